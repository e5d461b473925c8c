package wire

import "encoding/binary"

// The primitives of the wire format: fixed-width integers, length-prefixed
// strings and bounded counts, decoded with every length checked before use.

// decoder reads a body front to back; the first error sticks and every
// later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = malformed(format, args...)
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

func (d *decoder) path() string { return d.str("path", 0, MaxPath) }
func (d *decoder) name() string { return d.str("name", 1, MaxName) }
func (d *decoder) text() string { return d.str("text", 0, MaxText) }

// strings reads a u16 count of u32-prefixed strings, each at most MaxArg
// bytes. An empty list decodes as nil.
func (d *decoder) strings() []string {
	n := d.count(MaxList, 4)
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
	if s > MaxSignal {
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
