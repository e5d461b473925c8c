//go:build linux || darwin

package forkserver

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// readFrameFd reads one frame, which carries no descriptors, from the
// blocking descriptor fd. io.EOF means the writer closed it between frames.
func readFrameFd(fd int) (frame, error) {
	var hdr [wire.HeaderSize]byte
	if err := readFullFd(fd, hdr[:]); err != nil {
		return frame{}, err
	}
	h, err := parseHeader(hdr[:])
	if err == nil && h.NumFds != 0 {
		err = fmt.Errorf("%w: %d descriptors on an exit pipe", wire.ErrMalformed, h.NumFds)
	}
	if err != nil {
		return frame{}, err
	}
	body := make([]byte, h.Len)
	if err := readFullFd(fd, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	m, err := decodeBody(h.Type, body)
	if err != nil {
		return frame{}, err
	}
	return frame{id: h.ID, msg: m}, nil
}

func readFullFd(fd int, p []byte) error {
	for n := 0; n < len(p); {
		var m int
		err := ignoringEINTR(func() (err error) {
			m, err = syscall.Read(fd, p[n:])
			return err
		})
		switch {
		case err != nil:
			return os.NewSyscallError("read", err)
		case m == 0 && n == 0:
			return io.EOF
		case m == 0:
			return io.ErrUnexpectedEOF
		}
		n += m
	}
	return nil
}

// waitReadable blocks the calling thread until fd is readable or ctx is
// done, and then returns ctx's error.
func waitReadable(ctx context.Context, fd int) error {
	if ctx.Done() == nil {
		return nil // the read that follows blocks
	}
	r, w, err := pipe()
	if err != nil {
		return err
	}
	defer closeFds([]int{r, w})
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		syscall.Write(w, []byte{0})
		close(woken)
	})
	defer func() {
		if !stop() {
			<-woken // w stays open until the write is done
		}
	}()
	pfds := []pollFd{{fd: int32(fd), events: pollIn}, {fd: int32(r), events: pollIn}}
	for {
		err := poll(pfds)
		switch {
		case err != nil:
			return os.NewSyscallError("poll", err)
		case pfds[0].revents != 0:
			return nil
		case pfds[1].revents != 0:
			return ctx.Err()
		}
	}
}
