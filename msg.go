package forkserver

// The wire format between a program, its fork server and the children.
//
// Every frame is a fixed 12-byte header followed by a body whose layout is
// fixed by the frame's type. All integers are little-endian. Descriptors
// travel as SCM_RIGHTS with the first bytes of the frame; the header says
// how many, and the body says which ones must be there.
//
//	header: version u8 | type u8 | nfds u16 | id u32 | body length u32
//
// Variable parts of a body (names, argument bytes, texts) carry a length
// prefix and have a hard upper bound. The decoder checks every length against
// its bound and against the bytes present before it allocates, rejects
// unknown versions, types and flag bits, and rejects trailing bytes, so that
// a message that decodes re-encodes to exactly the bytes it came from.
//
// The functions here are pure: they see bytes, never descriptors.

import (
	"encoding/binary"
	"math/bits"
)

const (
	// MaxArg is the largest argument, in bytes, that Fork and Eval accept.
	MaxArg = 64 << 10

	// MaxFiles is the largest number of descriptors in Attr.Files.
	MaxFiles = 64

	// MaxName is the longest function name, in bytes, that Register accepts.
	MaxName = 255

	protoVersion = 1
	headerLen    = 12
	maxText      = 1024         // error texts in replies are cut to this
	maxFds       = 5 + MaxFiles // socket, exit or server connection, and stdio, then Attr.Files
	maxBody      = 1 << 20      // settings included; Fork checks what it sends
	maxSignal    = 64
)

// errMalformed is what every decoding failure wraps.
var errMalformed = newError("malformed frame")

type msgType uint8

// Requests, sent by a program or child to its server.
const (
	tFork msgType = 1 + iota
	tSignal
	tKillAll
	tEval
	tStop
	tDetach
	tExec         // like tFork, but executes an external program
	tSignalGroup  // a signalMsg for the child's process group
	tKillAllGroup // a killAllMsg that reaches the process groups too
	tTaken        // the requester assigned a warm child it was handed; no reply
)

// Frames sent by the server.
const (
	tHello  msgType = 32 // first frame on a program's connection
	tReply  msgType = 33 // answers the request with the same id
	tExit   msgType = 34 // a child exited; id is the Fork request's
	tWarm   msgType = 35 // hands the requester a warm child; id is the server's
	tAssign msgType = 48 // tells a fresh child what to run
)

// Flag bits of forkMsg and assignMsg: which optional descriptors follow,
// always in this order, before the Attr.Files ones.
const (
	flagSocket uint32 = 1 << iota // a socket to the requester
	flagServer                    // a connection to the server (no descriptor in a Fork request)
	flagStdin
	flagStdout
	flagStderr
	flagSettings // a settings section follows (no descriptor)
	flagExit     // the write end of a pipe for the reply and the exit (after the socket)

	fdFlags     = flagSocket | flagExit | flagServer | flagStdin | flagStdout | flagStderr
	forkFlags   = fdFlags | flagSettings
	assignFlags = forkFlags &^ flagExit // a pooled child gets its stdio in the assignment
	execFlags   = forkFlags &^ flagServer
)

// Bounds of the settings section and of an exec request.
const (
	maxPath    = 4096
	maxList    = 1024 // environment entries, arguments
	maxGroups  = 256
	maxIDMaps  = 32
	maxRlimits = 32
	maxLayers  = 16  // Landlock's own limit on stacked policies
	maxRules   = 256 // paths in each list of a PathPolicy
)

// Reply codes. codeOK carries a value (a pid for Fork); the others name an
// error the requester turns back into the matching sentinel.
const (
	codeOK     uint16 = iota
	codeErrno         // value is an errno, text the operation, then the path it acted on after a space if any
	codeFailed        // text is an error message (Eval)
	codeUnknownFunc
	codePermission
	codeProcessDone
	codeClosed
	codeChildLimit
	numCodes
)

type header struct {
	typ  msgType
	nfds uint16
	id   uint32
	len  uint32
}

// frame is one received frame and the descriptors that came with it, which
// its receiver owns.
type frame struct {
	id  uint32
	msg message
	fds []int
}

// message is one frame's body.
type message interface {
	kind() msgType
	appendBody(b []byte) []byte
	parseBody(d *decoder)
	// numFds is how many descriptors must travel with the frame.
	numFds() int
}

type forkMsg struct {
	flags    uint32
	nfiles   uint16
	name     string
	arg      []byte
	settings settings // if flags has flagSettings
}

type signalMsg struct {
	pid   uint32
	sig   uint32
	group bool // the child's process group, which it leads
}

type killAllMsg struct {
	sig    uint32
	groups bool // and the process group of every child that leads one
}

type evalMsg struct {
	name string
	arg  []byte
}

type stopMsg struct{}

type detachMsg struct{}

type helloMsg struct{ pid uint32 }

type replyMsg struct {
	code  uint16
	value uint32
	text  string
}

// exitMsg holds a wait status and an rusage as 18 integers: user time and
// system time as (seconds, microseconds), then the 14 counters of struct
// rusage in their usual order.
type exitMsg struct {
	pid    uint32
	status uint32
	rusage [18]int64
}

// warmMsg hands the requester a warm child: its descriptors are the
// child's control socket, on which the requester writes the assignment,
// and the read end of the child's exit pipe.
type warmMsg struct{ pidBody }

// takenMsg tells the server that the requester assigned the warm child
// pid, which from then on is the requester's as a Fork's child is, and
// whether the child leads its own process group.
type takenMsg struct {
	pid   uint32
	group bool
}

// pidBody is a body that is one pid.
type pidBody struct{ pid uint32 }

type assignMsg struct {
	flags     uint32
	nfiles    uint16
	serverPid uint32
	name      string
	arg       []byte
	settings  settings // if flags has flagSettings
}

// execMsg asks for an external program. Its descriptors are as a Fork's,
// but it has no connection to the server.
type execMsg struct {
	flags    uint32
	nfiles   uint16
	path     string
	argv     []string
	settings settings // if flags has flagSettings
}

// settings are what a child is set up with beyond its descriptors. The
// set bits say which of the optional ones apply.
type settings struct {
	set        uint32 // setSetsid | ...
	dir        string
	chroot     string
	env        []string // the whole environment if set has setEnv
	extraEnv   []string
	uid, gid   uint32 // if set has setCredential
	groups     []uint32
	namespaces uint32
	uidMaps    []wireIDMap
	gidMaps    []wireIDMap
	pdeathsig  uint32
	rlimits    []wireRlimit
	rights     uint32      // of the child's connection to the server; 0 means the default
	pathLayers []pathLayer // Landlock layers the request asks for (a confining connection holds its own as rulesets)
	syscalls   uint32      // SyscallGroup bits denied
	children   uint32      // the bound on children alive through that connection; 0: none of its own
}

// pathLayer is one PathPolicy.
type pathLayer struct{ readOnly, readWrite []string }

const (
	setSetsid uint32 = 1 << iota
	setSetpgid
	setEnv
	setCredential
	setNoNewPrivs
	setAll = setSetsid | setSetpgid | setEnv | setCredential | setNoNewPrivs
)

type wireIDMap struct{ container, host, size uint32 }

type wireRlimit struct {
	resource uint32
	cur, max uint64
}

func (*forkMsg) kind() msgType { return tFork }
func (*execMsg) kind() msgType { return tExec }
func (m *signalMsg) kind() msgType {
	if m.group {
		return tSignalGroup
	}
	return tSignal
}

func (m *killAllMsg) kind() msgType {
	if m.groups {
		return tKillAllGroup
	}
	return tKillAll
}
func (*evalMsg) kind() msgType   { return tEval }
func (*stopMsg) kind() msgType   { return tStop }
func (*detachMsg) kind() msgType { return tDetach }
func (*helloMsg) kind() msgType  { return tHello }
func (*replyMsg) kind() msgType  { return tReply }
func (*exitMsg) kind() msgType   { return tExit }
func (*assignMsg) kind() msgType { return tAssign }
func (*warmMsg) kind() msgType   { return tWarm }
func (*takenMsg) kind() msgType  { return tTaken }

func (m *forkMsg) numFds() int {
	return bits.OnesCount32(m.flags&fdFlags&^flagServer) + int(m.nfiles)
}
func (m *execMsg) numFds() int   { return bits.OnesCount32(m.flags&fdFlags) + int(m.nfiles) }
func (m *assignMsg) numFds() int { return bits.OnesCount32(m.flags&fdFlags) + int(m.nfiles) }
func (*signalMsg) numFds() int   { return 0 }
func (*killAllMsg) numFds() int  { return 0 }
func (*evalMsg) numFds() int     { return 0 }
func (*stopMsg) numFds() int     { return 0 }
func (*detachMsg) numFds() int   { return 0 }
func (*helloMsg) numFds() int    { return 0 }
func (*replyMsg) numFds() int    { return 0 }
func (*exitMsg) numFds() int     { return 0 }
func (*warmMsg) numFds() int     { return 2 }
func (*takenMsg) numFds() int    { return 0 }

func newMessage(t msgType) message {
	switch t {
	case tFork:
		return new(forkMsg)
	case tExec:
		return new(execMsg)
	case tSignal:
		return new(signalMsg)
	case tSignalGroup:
		return &signalMsg{group: true}
	case tKillAll:
		return new(killAllMsg)
	case tKillAllGroup:
		return &killAllMsg{groups: true}
	case tEval:
		return new(evalMsg)
	case tStop:
		return new(stopMsg)
	case tDetach:
		return new(detachMsg)
	case tHello:
		return new(helloMsg)
	case tReply:
		return new(replyMsg)
	case tExit:
		return new(exitMsg)
	case tAssign:
		return new(assignMsg)
	case tWarm:
		return new(warmMsg)
	case tTaken:
		return new(takenMsg)
	}
	return nil
}

// A Fork, an Exec and an assignment share a layout: flags and the count
// of Attr.Files first, then what is theirs alone, then the settings if the
// flags say so. appendLaunch and parseLaunch encode and decode it around
// the middle part.

func appendLaunch(b []byte, flags uint32, nfiles uint16, st *settings, middle func([]byte) []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint16(b, nfiles)
	b = middle(b)
	if flags&flagSettings != 0 {
		b = st.append(b)
	}
	return b
}

func (d *decoder) parseLaunch(allowed uint32, flags *uint32, nfiles *uint16, st *settings, middle func()) {
	*flags = d.flags(allowed)
	*nfiles = d.nfiles()
	middle()
	if *flags&flagSettings != 0 {
		st.parse(d)
	}
}

func (m *forkMsg) appendBody(b []byte) []byte {
	return appendLaunch(b, m.flags, m.nfiles, &m.settings, func(b []byte) []byte {
		return appendArg(appendString(b, m.name), m.arg)
	})
}

func (m *forkMsg) parseBody(d *decoder) {
	d.parseLaunch(forkFlags, &m.flags, &m.nfiles, &m.settings, func() {
		m.name = d.name()
		m.arg = d.arg()
	})
}

func (m *execMsg) appendBody(b []byte) []byte {
	return appendLaunch(b, m.flags, m.nfiles, &m.settings, func(b []byte) []byte {
		return appendStrings(appendString(b, m.path), m.argv)
	})
}

func (m *execMsg) parseBody(d *decoder) {
	d.parseLaunch(execFlags, &m.flags, &m.nfiles, &m.settings, func() {
		m.path = d.path()
		if d.err == nil && m.path == "" {
			d.fail("empty path")
		}
		m.argv = d.strings()
	})
}

func (st *settings) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, st.set)
	b = appendString(b, st.dir)
	b = appendString(b, st.chroot)
	b = appendStrings(b, st.env)
	b = appendStrings(b, st.extraEnv)
	b = binary.LittleEndian.AppendUint32(b, st.uid)
	b = binary.LittleEndian.AppendUint32(b, st.gid)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.groups)))
	for _, g := range st.groups {
		b = binary.LittleEndian.AppendUint32(b, g)
	}
	b = binary.LittleEndian.AppendUint32(b, st.namespaces)
	for _, maps := range [][]wireIDMap{st.uidMaps, st.gidMaps} {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(maps)))
		for _, m := range maps {
			b = binary.LittleEndian.AppendUint32(b, m.container)
			b = binary.LittleEndian.AppendUint32(b, m.host)
			b = binary.LittleEndian.AppendUint32(b, m.size)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, st.pdeathsig)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.rlimits)))
	for _, r := range st.rlimits {
		b = binary.LittleEndian.AppendUint32(b, r.resource)
		b = binary.LittleEndian.AppendUint64(b, r.cur)
		b = binary.LittleEndian.AppendUint64(b, r.max)
	}
	b = binary.LittleEndian.AppendUint32(b, st.rights)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(st.pathLayers)))
	for _, l := range st.pathLayers {
		for _, list := range [][]string{l.readOnly, l.readWrite} {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(list)))
			for _, p := range list {
				b = appendString(b, p)
			}
		}
	}
	b = binary.LittleEndian.AppendUint32(b, st.syscalls)
	return binary.LittleEndian.AppendUint32(b, st.children)
}

func (st *settings) parse(d *decoder) {
	st.set = d.flags(setAll)
	st.dir = d.path()
	st.chroot = d.path()
	st.env = d.strings()
	st.extraEnv = d.strings()
	st.uid = d.u32()
	st.gid = d.u32()
	if n := d.count(maxGroups, 4); n > 0 {
		st.groups = make([]uint32, n)
		for i := range st.groups {
			st.groups[i] = d.u32()
		}
	}
	st.namespaces = d.flags(uint32(allNamespaces))
	for _, maps := range []*[]wireIDMap{&st.uidMaps, &st.gidMaps} {
		if n := d.count(maxIDMaps, 12); n > 0 {
			*maps = make([]wireIDMap, n)
			for i := range *maps {
				(*maps)[i] = wireIDMap{d.u32(), d.u32(), d.u32()}
			}
		}
	}
	st.pdeathsig = d.signal()
	if n := d.count(maxRlimits, 20); n > 0 {
		st.rlimits = make([]wireRlimit, n)
		for i := range st.rlimits {
			st.rlimits[i] = wireRlimit{d.u32(), d.u64(), d.u64()}
		}
	}
	st.rights = d.flags(uint32(allRights))
	if n := d.count(maxLayers, 4); n > 0 {
		st.pathLayers = make([]pathLayer, n)
		for i := range st.pathLayers {
			for _, list := range []*[]string{&st.pathLayers[i].readOnly, &st.pathLayers[i].readWrite} {
				if n := d.count(maxRules, 2); n > 0 {
					*list = make([]string, n)
					for j := range *list {
						(*list)[j] = d.path()
					}
				}
			}
		}
	}
	st.syscalls = d.flags(uint32(allSyscallGroups))
	st.children = d.u32()
}

func (m *signalMsg) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.pid)
	return binary.LittleEndian.AppendUint32(b, m.sig)
}

func (m *signalMsg) parseBody(d *decoder) {
	m.pid = d.pid()
	m.sig = d.signal()
}

func (m *killAllMsg) appendBody(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, m.sig)
}

func (m *killAllMsg) parseBody(d *decoder) { m.sig = d.signal() }

func (m *evalMsg) appendBody(b []byte) []byte {
	return appendArg(appendString(b, m.name), m.arg)
}

func (m *evalMsg) parseBody(d *decoder) {
	m.name = d.name()
	m.arg = d.arg()
}

func (*stopMsg) appendBody(b []byte) []byte   { return b }
func (*stopMsg) parseBody(*decoder)           {}
func (*detachMsg) appendBody(b []byte) []byte { return b }
func (*detachMsg) parseBody(*decoder)         {}

func (m *pidBody) appendBody(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, m.pid)
}

func (m *pidBody) parseBody(d *decoder) { m.pid = d.pid() }

func (m *takenMsg) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.pid)
	return binary.LittleEndian.AppendUint32(b, boolFlag(m.group))
}

func (m *takenMsg) parseBody(d *decoder) {
	m.pid = d.pid()
	m.group = d.flags(1) != 0
}

func boolFlag(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (m *helloMsg) appendBody(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, m.pid)
}

func (m *helloMsg) parseBody(d *decoder) { m.pid = d.pid() }

func (m *replyMsg) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, m.code)
	b = binary.LittleEndian.AppendUint32(b, m.value)
	return appendString(b, m.text)
}

func (m *replyMsg) parseBody(d *decoder) {
	m.code = d.u16()
	if m.code >= numCodes {
		d.fail("unknown reply code %d", m.code)
	}
	m.value = d.u32()
	m.text = d.text()
}

func (m *exitMsg) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.pid)
	b = binary.LittleEndian.AppendUint32(b, m.status)
	for _, v := range m.rusage {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func (m *exitMsg) parseBody(d *decoder) {
	m.pid = d.pid()
	m.status = d.u32()
	for i := range m.rusage {
		m.rusage[i] = d.i64()
	}
}

func (m *assignMsg) appendBody(b []byte) []byte {
	return appendLaunch(b, m.flags, m.nfiles, &m.settings, func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint32(b, m.serverPid)
		return appendArg(appendString(b, m.name), m.arg)
	})
}

func (m *assignMsg) parseBody(d *decoder) {
	d.parseLaunch(assignFlags, &m.flags, &m.nfiles, &m.settings, func() {
		m.serverPid = d.pid()
		m.name = d.name()
		m.arg = d.arg()
	})
}
