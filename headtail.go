package forkserver

import "fmt"

// stderrKept is how much of a child's standard error Output keeps from its
// start, and as much again from its end.
const stderrKept = 32 << 10

// headTail is a writer that keeps the first n bytes written to it and the
// last n.
type headTail struct {
	n       int
	head    []byte
	tail    []byte // the last bytes written, at most 2n until Bytes trims them
	omitted int64  // bytes dropped between head and tail
}

func (h *headTail) Write(p []byte) (int, error) {
	written := len(p)
	if room := h.n - len(h.head); room > 0 {
		k := min(room, len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	h.tail = append(h.tail, p...)
	if len(h.tail) > 2*h.n {
		h.trim()
	}
	return written, nil
}

// trim drops all but the last n bytes of the tail.
func (h *headTail) trim() {
	if over := len(h.tail) - h.n; over > 0 {
		h.omitted += int64(over)
		h.tail = h.tail[:copy(h.tail, h.tail[over:])]
	}
}

// Bytes returns what h kept, with a line in place of what it left out; nil
// for a nil h.
func (h *headTail) Bytes() []byte {
	if h == nil {
		return nil
	}
	h.trim()
	out := append([]byte(nil), h.head...)
	if h.omitted > 0 {
		out = fmt.Appendf(out, "\n... omitting %d bytes ...\n", h.omitted)
	}
	return append(out, h.tail...)
}
