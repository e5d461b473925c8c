package wire

// The messages, one type for each type of frame, and their bodies.

import (
	"encoding/binary"
	"math/bits"
)

// Type is a frame's type, which fixes the layout of its body.
type Type uint8

// Requests, sent by a program or child to its server.
const (
	TypeFork Type = 1 + iota
	TypeSignal
	TypeKillAll
	TypeEval
	TypeStop
	TypeDetach
	TypeExec         // like TypeFork, but executes an external program
	TypeSignalGroup  // a Signal for the child's process group
	TypeKillAllGroup // a KillAll that reaches the process groups too
	TypeTaken        // the requester assigned a warm child it was handed; no reply
)

// Frames sent by the server.
const (
	TypeHello  Type = 32 // first frame on a program's connection
	TypeReply  Type = 33 // answers the request with the same id
	TypeExit   Type = 34 // a child exited; id is the Fork request's
	TypeWarm   Type = 35 // hands the requester a warm child; id is the server's
	TypeAssign Type = 48 // tells a fresh child what to run
	TypeSocket Type = 49 // gives a warm child, ahead of its assignment, its function's socket
)

// Flag bits of Fork, Exec and Assign: which optional descriptors follow,
// always in this order, before the NumFiles others.
const (
	FlagSocket uint32 = 1 << iota // a socket to the requester
	FlagServer                    // a connection to the server (no descriptor in a Fork request)
	FlagStdin
	FlagStdout
	FlagStderr
	FlagSettings    // a settings section follows (no descriptor)
	FlagExit        // the write end of a pipe for the reply and the exit (after the socket)
	FlagSocketAhead // the socket came ahead, in a Socket frame (Assign only; no descriptor)

	fdFlags     = FlagSocket | FlagExit | FlagServer | FlagStdin | FlagStdout | FlagStderr
	forkFlags   = fdFlags | FlagSettings
	assignFlags = forkFlags&^FlagExit | FlagSocketAhead // a pooled child gets its stdio in the assignment
	execFlags   = forkFlags &^ FlagServer
)

// Reply codes. CodeOK carries a value (a pid for Fork); the others name an
// error the requester turns back into the matching sentinel.
const (
	CodeOK     uint16 = iota
	CodeErrno         // value is an errno, text the operation, then the path it acted on after a space if any
	CodeFailed        // text is an error message (Eval)
	CodeUnknownFunc
	CodePermission
	CodeProcessDone
	CodeClosed
	CodeChildLimit
	numCodes
)

// Message is one frame's body: one of the types of this package.
type Message interface {
	// Type is the type of the frame that carries the message.
	Type() Type
	// NumFds is how many descriptors must travel with the frame.
	NumFds() int
	appendBody(b []byte) []byte
	parseBody(d *decoder)
}

// Fork asks the server for a child that runs the function Name.
type Fork struct {
	Flags    uint32
	NumFiles uint16
	Name     string
	Arg      []byte
	Settings Settings // if Flags has FlagSettings
}

// Signal asks the server to signal its child Pid.
type Signal struct {
	Pid   uint32
	Sig   uint32
	Group bool // the child's process group, which it leads
}

// KillAll asks the server to signal every child of the connection.
type KillAll struct {
	Sig    uint32
	Groups bool // and the process group of every child that leads one
}

// Eval asks the server to run the function Name itself.
type Eval struct {
	Name string
	Arg  []byte
}

// Stop asks the server to end its children and exit.
type Stop struct{}

// Detach asks the server to exit and leave its children running.
type Detach struct{}

// Hello is the server's first frame to a program: its pid.
type Hello struct{ Pid uint32 }

// Reply answers the request with the frame's id.
type Reply struct {
	Code  uint16
	Value uint32
	Text  string
}

// Exit says that a child exited. It holds a wait status and an rusage as 18 integers: user time and
// system time as (seconds, microseconds), then the 14 counters of struct
// rusage in their usual order.
type Exit struct {
	Pid    uint32
	Status uint32
	Rusage [18]int64
}

// Warm hands the requester a warm child: its descriptors are the
// child's control socket, on which the requester writes the assignment,
// and the read end of the child's exit pipe. Sandbox says which pool it
// comes from: 0 the plain pool, i the i-th sandbox the program declared,
// whose creation-time settings the child runs under already.
type Warm struct {
	Pid     uint32
	Sandbox uint32 // at most MaxSandboxes
}

// MaxSandboxes bounds the sandboxes a program may declare.
const MaxSandboxes = 64

// Taken tells the server that the requester assigned the warm child
// pid, which from then on is the requester's as a Fork's child is, and
// whether the child leads its own process group.
type Taken struct {
	Pid   uint32
	Group bool
}

// Assign tells a fresh child what to run.
type Assign struct {
	Flags     uint32
	NumFiles  uint16
	ServerPid uint32
	Name      string
	Arg       []byte
	Settings  Settings // if Flags has FlagSettings
}

// Socket gives a warm child, ahead of its assignment, the socket its
// function gets if the assignment has FlagSocketAhead: its descriptor is
// the child's end of a connected pair, which the child makes a connection
// of while it waits.
type Socket struct{}

// Exec asks for an external program. Its descriptors are as a Fork's,
// but it has no connection to the server.
type Exec struct {
	Flags    uint32
	NumFiles uint16
	Path     string
	Argv     []string
	Settings Settings // if Flags has FlagSettings
}

func (*Fork) Type() Type { return TypeFork }
func (*Exec) Type() Type { return TypeExec }
func (m *Signal) Type() Type {
	if m.Group {
		return TypeSignalGroup
	}
	return TypeSignal
}

func (m *KillAll) Type() Type {
	if m.Groups {
		return TypeKillAllGroup
	}
	return TypeKillAll
}
func (*Eval) Type() Type   { return TypeEval }
func (*Stop) Type() Type   { return TypeStop }
func (*Detach) Type() Type { return TypeDetach }
func (*Hello) Type() Type  { return TypeHello }
func (*Reply) Type() Type  { return TypeReply }
func (*Exit) Type() Type   { return TypeExit }
func (*Assign) Type() Type { return TypeAssign }
func (*Warm) Type() Type   { return TypeWarm }
func (*Taken) Type() Type  { return TypeTaken }
func (*Socket) Type() Type { return TypeSocket }

func (m *Fork) NumFds() int {
	return bits.OnesCount32(m.Flags&fdFlags&^FlagServer) + int(m.NumFiles)
}
func (m *Exec) NumFds() int   { return bits.OnesCount32(m.Flags&fdFlags) + int(m.NumFiles) }
func (m *Assign) NumFds() int { return bits.OnesCount32(m.Flags&fdFlags) + int(m.NumFiles) }
func (*Signal) NumFds() int   { return 0 }
func (*KillAll) NumFds() int  { return 0 }
func (*Eval) NumFds() int     { return 0 }
func (*Stop) NumFds() int     { return 0 }
func (*Detach) NumFds() int   { return 0 }
func (*Hello) NumFds() int    { return 0 }
func (*Reply) NumFds() int    { return 0 }
func (*Exit) NumFds() int     { return 0 }
func (*Warm) NumFds() int     { return 2 }
func (*Taken) NumFds() int    { return 0 }
func (*Socket) NumFds() int   { return 1 }

func newMessage(t Type) Message {
	switch t {
	case TypeFork:
		return new(Fork)
	case TypeExec:
		return new(Exec)
	case TypeSignal:
		return new(Signal)
	case TypeSignalGroup:
		return &Signal{Group: true}
	case TypeKillAll:
		return new(KillAll)
	case TypeKillAllGroup:
		return &KillAll{Groups: true}
	case TypeEval:
		return new(Eval)
	case TypeStop:
		return new(Stop)
	case TypeDetach:
		return new(Detach)
	case TypeHello:
		return new(Hello)
	case TypeReply:
		return new(Reply)
	case TypeExit:
		return new(Exit)
	case TypeAssign:
		return new(Assign)
	case TypeWarm:
		return new(Warm)
	case TypeTaken:
		return new(Taken)
	case TypeSocket:
		return new(Socket)
	}
	return nil
}

// A Fork, an Exec and an assignment share a layout: flags and the count
// of Attr.Files first, then what is theirs alone, then the settings if the
// flags say so. appendLaunch and parseLaunch encode and decode it around
// the middle part.

func appendLaunch(b []byte, flags uint32, nfiles uint16, st *Settings, middle func([]byte) []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint16(b, nfiles)
	b = middle(b)
	if flags&FlagSettings != 0 {
		b = st.append(b)
	}
	return b
}

func (d *decoder) parseLaunch(allowed uint32, flags *uint32, nfiles *uint16, st *Settings, middle func()) {
	*flags = d.flags(allowed)
	*nfiles = d.nfiles()
	middle()
	if *flags&FlagSettings != 0 {
		st.parse(d)
	}
}

func (m *Fork) appendBody(b []byte) []byte {
	return appendLaunch(b, m.Flags, m.NumFiles, &m.Settings, func(b []byte) []byte {
		return appendArg(appendString(b, m.Name), m.Arg)
	})
}

func (m *Fork) parseBody(d *decoder) {
	d.parseLaunch(forkFlags, &m.Flags, &m.NumFiles, &m.Settings, func() {
		m.Name = d.name()
		m.Arg = d.arg()
	})
}

func (m *Exec) appendBody(b []byte) []byte {
	return appendLaunch(b, m.Flags, m.NumFiles, &m.Settings, func(b []byte) []byte {
		return appendStrings(appendString(b, m.Path), m.Argv)
	})
}

func (m *Exec) parseBody(d *decoder) {
	d.parseLaunch(execFlags, &m.Flags, &m.NumFiles, &m.Settings, func() {
		m.Path = d.path()
		if d.err == nil && m.Path == "" {
			d.fail("empty path")
		}
		m.Argv = d.strings()
	})
}

func (m *Signal) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.Pid)
	return binary.LittleEndian.AppendUint32(b, m.Sig)
}

func (m *Signal) parseBody(d *decoder) {
	m.Pid = d.pid()
	m.Sig = d.signal()
}

func (m *KillAll) appendBody(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, m.Sig)
}

func (m *KillAll) parseBody(d *decoder) { m.Sig = d.signal() }

func (m *Eval) appendBody(b []byte) []byte {
	return appendArg(appendString(b, m.Name), m.Arg)
}

func (m *Eval) parseBody(d *decoder) {
	m.Name = d.name()
	m.Arg = d.arg()
}

func (*Stop) appendBody(b []byte) []byte   { return b }
func (*Stop) parseBody(*decoder)           {}
func (*Detach) appendBody(b []byte) []byte { return b }
func (*Detach) parseBody(*decoder)         {}
func (*Socket) appendBody(b []byte) []byte { return b }
func (*Socket) parseBody(*decoder)         {}

func (m *Warm) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.Pid)
	return binary.LittleEndian.AppendUint32(b, m.Sandbox)
}

func (m *Warm) parseBody(d *decoder) {
	m.Pid = d.pid()
	m.Sandbox = d.u32()
	if d.err == nil && m.Sandbox > MaxSandboxes {
		d.fail("sandbox %d exceeds %d", m.Sandbox, MaxSandboxes)
	}
}

func (m *Taken) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.Pid)
	return binary.LittleEndian.AppendUint32(b, boolFlag(m.Group))
}

func (m *Taken) parseBody(d *decoder) {
	m.Pid = d.pid()
	m.Group = d.flags(1) != 0
}

func boolFlag(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (m *Hello) appendBody(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, m.Pid)
}

func (m *Hello) parseBody(d *decoder) { m.Pid = d.pid() }

func (m *Reply) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, m.Code)
	b = binary.LittleEndian.AppendUint32(b, m.Value)
	return appendString(b, m.Text)
}

func (m *Reply) parseBody(d *decoder) {
	m.Code = d.u16()
	if m.Code >= numCodes {
		d.fail("unknown reply code %d", m.Code)
	}
	m.Value = d.u32()
	m.Text = d.text()
}

func (m *Exit) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.Pid)
	b = binary.LittleEndian.AppendUint32(b, m.Status)
	for _, v := range m.Rusage {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func (m *Exit) parseBody(d *decoder) {
	m.Pid = d.pid()
	m.Status = d.u32()
	for i := range m.Rusage {
		m.Rusage[i] = d.i64()
	}
}

func (m *Assign) appendBody(b []byte) []byte {
	return appendLaunch(b, m.Flags, m.NumFiles, &m.Settings, func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint32(b, m.ServerPid)
		return appendArg(appendString(b, m.Name), m.Arg)
	})
}

func (m *Assign) parseBody(d *decoder) {
	d.parseLaunch(assignFlags, &m.Flags, &m.NumFiles, &m.Settings, func() {
		m.ServerPid = d.pid()
		m.Name = d.name()
		m.Arg = d.arg()
	})
	if d.err == nil && m.Flags&FlagSocket != 0 && m.Flags&FlagSocketAhead != 0 {
		d.fail("a socket both sent ahead and sent with the assignment")
	}
}
