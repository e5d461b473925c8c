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
	"errors"
	"fmt"
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
	maxText      = 1024                  // error texts in replies are cut to this
	maxFds       = 4 + MaxFiles          // socket and stdio, then Attr.Files
	maxBody      = 16 + MaxName + MaxArg // the largest body: an assignment
	maxSignal    = 64
)

// errMalformed is what every decoding failure wraps.
var errMalformed = errors.New("forkserver: malformed frame")

type msgType uint8

// Requests, sent by a program or child to its server.
const (
	tFork msgType = 1 + iota
	tSignal
	tKillAll
	tEval
	tStop
	tDetach
)

// Frames sent by the server.
const (
	tHello  msgType = 32 // first frame on a program's connection
	tReply  msgType = 33 // answers the request with the same id
	tExit   msgType = 34 // a child exited; id is the Fork request's
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

	forkFlags   = flagSocket | flagServer | flagStdin | flagStdout | flagStderr
	assignFlags = forkFlags // a pooled child gets its stdio in the assignment
)

// Reply codes. codeOK carries a value (a pid for Fork); the others name an
// error the requester turns back into the matching sentinel.
const (
	codeOK          uint16 = iota
	codeErrno              // value is an errno, text the operation
	codeFailed             // text is an error message (Eval)
	codeUnknownFunc        // text is the name
	codePermission
	codeProcessDone
	codeClosed
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
	flags  uint32
	nfiles uint16
	name   string
	arg    []byte
}

type signalMsg struct {
	pid uint32
	sig uint32
}

type killAllMsg struct{ sig uint32 }

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

type assignMsg struct {
	flags     uint32
	nfiles    uint16
	serverPid uint32
	name      string
	arg       []byte
}

func (*forkMsg) kind() msgType    { return tFork }
func (*signalMsg) kind() msgType  { return tSignal }
func (*killAllMsg) kind() msgType { return tKillAll }
func (*evalMsg) kind() msgType    { return tEval }
func (*stopMsg) kind() msgType    { return tStop }
func (*detachMsg) kind() msgType  { return tDetach }
func (*helloMsg) kind() msgType   { return tHello }
func (*replyMsg) kind() msgType   { return tReply }
func (*exitMsg) kind() msgType    { return tExit }
func (*assignMsg) kind() msgType  { return tAssign }

func (m *forkMsg) numFds() int {
	return bits.OnesCount32(m.flags&^flagServer) + int(m.nfiles)
}
func (m *assignMsg) numFds() int { return bits.OnesCount32(m.flags) + int(m.nfiles) }
func (*signalMsg) numFds() int   { return 0 }
func (*killAllMsg) numFds() int  { return 0 }
func (*evalMsg) numFds() int     { return 0 }
func (*stopMsg) numFds() int     { return 0 }
func (*detachMsg) numFds() int   { return 0 }
func (*helloMsg) numFds() int    { return 0 }
func (*replyMsg) numFds() int    { return 0 }
func (*exitMsg) numFds() int     { return 0 }

func newMessage(t msgType) message {
	switch t {
	case tFork:
		return new(forkMsg)
	case tSignal:
		return new(signalMsg)
	case tKillAll:
		return new(killAllMsg)
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
	}
	return nil
}

// appendFrame appends m's frame, header and body, to b.
func appendFrame(b []byte, id uint32, m message) []byte {
	start := len(b)
	b = append(b, protoVersion, byte(m.kind()))
	b = binary.LittleEndian.AppendUint16(b, uint16(m.numFds()))
	b = binary.LittleEndian.AppendUint32(b, id)
	b = append(b, 0, 0, 0, 0) // body length, set below
	b = m.appendBody(b)
	binary.LittleEndian.PutUint32(b[start+8:], uint32(len(b)-start-headerLen))
	return b
}

// parseHeader decodes a frame header. It bounds the body length before
// anyone allocates a buffer for it.
func parseHeader(b []byte) (header, error) {
	if len(b) < headerLen {
		return header{}, fmt.Errorf("%w: short header (%d bytes)", errMalformed, len(b))
	}
	if b[0] != protoVersion {
		return header{}, fmt.Errorf("%w: protocol version %d, want %d", errMalformed, b[0], protoVersion)
	}
	h := header{
		typ:  msgType(b[1]),
		nfds: binary.LittleEndian.Uint16(b[2:]),
		id:   binary.LittleEndian.Uint32(b[4:]),
		len:  binary.LittleEndian.Uint32(b[8:]),
	}
	if newMessage(h.typ) == nil {
		return header{}, fmt.Errorf("%w: unknown type %d", errMalformed, h.typ)
	}
	if h.len > maxBody {
		return header{}, fmt.Errorf("%w: body of %d bytes exceeds %d", errMalformed, h.len, maxBody)
	}
	if h.nfds > maxFds {
		return header{}, fmt.Errorf("%w: %d descriptors exceed %d", errMalformed, h.nfds, maxFds)
	}
	return h, nil
}

// decodeBody decodes the body of a frame of type t. The caller checks the
// descriptor count against the result's numFds.
func decodeBody(t msgType, body []byte) (message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("%w: unknown type %d", errMalformed, t)
	}
	d := decoder{b: body}
	m.parseBody(&d)
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// decodeFrame decodes a whole frame held in b.
func decodeFrame(b []byte) (header, message, error) {
	h, err := parseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if uint64(len(b)-headerLen) != uint64(h.len) {
		return h, nil, fmt.Errorf("%w: body is %d bytes, header says %d", errMalformed, len(b)-headerLen, h.len)
	}
	m, err := decodeBody(h.typ, b[headerLen:])
	if err == nil && m.numFds() != int(h.nfds) {
		err = fmt.Errorf("%w: type %d carries %d descriptors, header says %d", errMalformed, h.typ, m.numFds(), h.nfds)
	}
	return h, m, err
}

// decoder reads a body front to back; the first error sticks and every
// later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
	}
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("need %d bytes, have %d", n, len(d.b))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) i64() int64 {
	if p := d.take(8); p != nil {
		return int64(binary.LittleEndian.Uint64(p))
	}
	return 0
}

// name reads a u16-prefixed name of 1 to MaxName bytes.
func (d *decoder) name() string {
	n := int(d.u16())
	if d.err == nil && (n == 0 || n > MaxName) {
		d.fail("name of %d bytes, want 1 to %d", n, MaxName)
	}
	return string(d.take(n))
}

// text reads a u16-prefixed text of at most maxText bytes.
func (d *decoder) text() string {
	n := int(d.u16())
	if n > maxText {
		d.fail("text of %d bytes exceeds %d", n, maxText)
	}
	return string(d.take(n))
}

// arg reads a u32-prefixed byte string of at most MaxArg bytes. An empty one
// decodes as nil, so that it re-encodes identically.
func (d *decoder) arg() []byte {
	n := d.u32()
	if n > MaxArg {
		d.fail("argument of %d bytes exceeds %d", n, MaxArg)
	}
	p := d.take(int(n))
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) flags(allowed uint32) uint32 {
	f := d.u32()
	if f&^allowed != 0 {
		d.fail("unknown flag bits %#x", f&^allowed)
	}
	return f
}

func (d *decoder) nfiles() uint16 {
	n := d.u16()
	if n > MaxFiles {
		d.fail("%d files exceed %d", n, MaxFiles)
	}
	return n
}

func (d *decoder) pid() uint32 {
	p := d.u32()
	if d.err == nil && (p == 0 || p > 1<<30) {
		d.fail("pid %d out of range", p)
	}
	return p
}

func (d *decoder) signal() uint32 {
	s := d.u32()
	if s > maxSignal {
		d.fail("signal %d out of range", s)
	}
	return s
}

func appendName(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendArg(b []byte, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

func (m *forkMsg) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.flags)
	b = binary.LittleEndian.AppendUint16(b, m.nfiles)
	b = appendName(b, m.name)
	return appendArg(b, m.arg)
}

func (m *forkMsg) parseBody(d *decoder) {
	m.flags = d.flags(forkFlags)
	m.nfiles = d.nfiles()
	m.name = d.name()
	m.arg = d.arg()
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
	return appendArg(appendName(b, m.name), m.arg)
}

func (m *evalMsg) parseBody(d *decoder) {
	m.name = d.name()
	m.arg = d.arg()
}

func (*stopMsg) appendBody(b []byte) []byte   { return b }
func (*stopMsg) parseBody(*decoder)           {}
func (*detachMsg) appendBody(b []byte) []byte { return b }
func (*detachMsg) parseBody(*decoder)         {}

func (m *helloMsg) appendBody(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, m.pid)
}

func (m *helloMsg) parseBody(d *decoder) { m.pid = d.pid() }

func (m *replyMsg) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, m.code)
	b = binary.LittleEndian.AppendUint32(b, m.value)
	return appendName(b, m.text)
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
	b = binary.LittleEndian.AppendUint32(b, m.flags)
	b = binary.LittleEndian.AppendUint16(b, m.nfiles)
	b = binary.LittleEndian.AppendUint32(b, m.serverPid)
	b = appendName(b, m.name)
	return appendArg(b, m.arg)
}

func (m *assignMsg) parseBody(d *decoder) {
	m.flags = d.flags(assignFlags)
	m.nfiles = d.nfiles()
	m.serverPid = d.pid()
	m.name = d.name()
	m.arg = d.arg()
}
