// Package wire is the wire format between a program, its fork server and
// the children: the messages they exchange, and their encoding as frames.
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
// The functions here are pure: they see bytes, never descriptors, and
// make no system call.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	// MaxArg is the largest argument, in bytes, of a Fork, an Eval or an
	// assignment, and the largest string in a list.
	MaxArg = 64 << 10

	// MaxFiles is the largest number of descriptors a launch carries
	// beyond its socket, exit pipe, server connection and stdio.
	MaxFiles = 64

	// MaxName is the longest function name, in bytes.
	MaxName = 255

	Version    = 1            // of the wire format, the first byte of every frame
	HeaderSize = 12           // bytes of a frame's header
	MaxText    = 1024         // error texts in replies are cut to this
	MaxFds     = 5 + MaxFiles // socket, exit or server connection, and stdio, then the files
	MaxBody    = 1 << 20      // settings included; a sender checks what it sends
	MaxSignal  = 64           // the largest signal number
)

// ErrMalformed is what every decoding failure wraps.
var ErrMalformed = errors.New("malformed frame")

// malformed returns an error wrapping ErrMalformed that says what is
// wrong, as fmt.Sprintf(format, args...) does.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Header is a frame's header.
type Header struct {
	Type   Type
	NumFds uint16 // descriptors that come with the frame
	ID     uint32 // of the request, or of the request it answers
	Len    uint32 // bytes of the body
}

// AppendFrame appends m's frame, header and body, to b.
func AppendFrame(b []byte, id uint32, m Message) []byte {
	start := len(b)
	b = append(b, Version, byte(m.Type()))
	b = binary.LittleEndian.AppendUint16(b, uint16(m.NumFds()))
	b = binary.LittleEndian.AppendUint32(b, id)
	b = append(b, 0, 0, 0, 0) // body length, set below
	b = m.appendBody(b)
	binary.LittleEndian.PutUint32(b[start+8:], uint32(len(b)-start-HeaderSize))
	return b
}

// ParseHeader decodes a frame header. It bounds the body length before
// anyone allocates a buffer for it.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, malformed("short header (%d bytes)", len(b))
	}
	if b[0] != Version {
		return Header{}, malformed("protocol version %d, want %d", b[0], Version)
	}
	h := Header{
		Type:   Type(b[1]),
		NumFds: binary.LittleEndian.Uint16(b[2:]),
		ID:     binary.LittleEndian.Uint32(b[4:]),
		Len:    binary.LittleEndian.Uint32(b[8:]),
	}
	if newMessage(h.Type) == nil {
		return Header{}, malformed("unknown type %d", h.Type)
	}
	if h.Len > MaxBody {
		return Header{}, malformed("body of %d bytes exceeds %d", h.Len, MaxBody)
	}
	if h.NumFds > MaxFds {
		return Header{}, malformed("%d descriptors exceed %d", h.NumFds, MaxFds)
	}
	return h, nil
}

// DecodeBody decodes the body of a frame of type t. The caller checks the
// descriptor count against the result's NumFds.
func DecodeBody(t Type, body []byte) (Message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, malformed("unknown type %d", t)
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

// DecodeFrame decodes a whole frame held in b.
func DecodeFrame(b []byte) (Header, Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if uint64(len(b)-HeaderSize) != uint64(h.Len) {
		return h, nil, malformed("body is %d bytes, header says %d", len(b)-HeaderSize, h.Len)
	}
	m, err := DecodeBody(h.Type, b[HeaderSize:])
	if err == nil && m.NumFds() != int(h.NumFds) {
		err = malformed("type %d carries %d descriptors, header says %d", h.Type, m.NumFds(), h.NumFds)
	}
	return h, m, err
}
