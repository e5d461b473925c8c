package forkserver

import (
	"encoding/binary"
)

// Frames and the primitives of the wire format: the header, fixed-width
// integers, length-prefixed strings and bounded counts, decoded with every
// length checked before use.

// decoder reads a body front to back; the first error sticks and every
// later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = errorf("%w: "+format, append([]any{errMalformed}, args...)...)
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

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) i64() int64 { return int64(d.u64()) }

// count reads a u16 element count of at most max, whose elements of size
// bytes each must all be present.
func (d *decoder) count(max, size int) int {
	n := int(d.u16())
	switch {
	case n > max:
		d.fail("%d elements exceed %d", n, max)
	case n*size > len(d.b):
		d.fail("%d elements of %d bytes, have %d bytes", n, size, len(d.b))
	}
	if d.err != nil {
		return 0
	}
	return n
}

// str reads a u16-prefixed string of lo to hi bytes, called what in an
// error.
func (d *decoder) str(what string, lo, hi int) string {
	n := int(d.u16())
	if d.err == nil && (n < lo || n > hi) {
		d.fail("%s of %d bytes, want %d to %d", what, n, lo, hi)
	}
	return string(d.take(n))
}

func (d *decoder) path() string { return d.str("path", 0, maxPath) }
func (d *decoder) name() string { return d.str("name", 1, MaxName) }
func (d *decoder) text() string { return d.str("text", 0, maxText) }

// strings reads a u16 count of u32-prefixed strings, each at most MaxArg
// bytes. An empty list decodes as nil.
func (d *decoder) strings() []string {
	n := d.count(maxList, 4)
	if n == 0 {
		return nil
	}
	list := make([]string, n)
	for i := range list {
		k := d.u32()
		if k > MaxArg {
			d.fail("string of %d bytes exceeds %d", k, MaxArg)
		}
		list[i] = string(d.take(int(k)))
	}
	return list
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

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, list []string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(list)))
	for _, s := range list {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendArg(b []byte, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
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
		return header{}, errorf("%w: short header (%d bytes)", errMalformed, len(b))
	}
	if b[0] != protoVersion {
		return header{}, errorf("%w: protocol version %d, want %d", errMalformed, b[0], protoVersion)
	}
	h := header{
		typ:  msgType(b[1]),
		nfds: binary.LittleEndian.Uint16(b[2:]),
		id:   binary.LittleEndian.Uint32(b[4:]),
		len:  binary.LittleEndian.Uint32(b[8:]),
	}
	if newMessage(h.typ) == nil {
		return header{}, errorf("%w: unknown type %d", errMalformed, h.typ)
	}
	if h.len > maxBody {
		return header{}, errorf("%w: body of %d bytes exceeds %d", errMalformed, h.len, maxBody)
	}
	if h.nfds > maxFds {
		return header{}, errorf("%w: %d descriptors exceed %d", errMalformed, h.nfds, maxFds)
	}
	return h, nil
}

// decodeBody decodes the body of a frame of type t. The caller checks the
// descriptor count against the result's numFds.
func decodeBody(t msgType, body []byte) (message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, errorf("%w: unknown type %d", errMalformed, t)
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
		return h, nil, errorf("%w: body is %d bytes, header says %d", errMalformed, len(b)-headerLen, h.len)
	}
	m, err := decodeBody(h.typ, b[headerLen:])
	if err == nil && m.numFds() != int(h.nfds) {
		err = errorf("%w: type %d carries %d descriptors, header says %d", errMalformed, h.typ, m.numFds(), h.nfds)
	}
	return h, m, err
}
