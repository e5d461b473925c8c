//go:build linux || darwin

package forkserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

var (
	errNoData      = errors.New("descriptors need at least one byte of data to travel with")
	errTruncated   = errors.New("descriptors truncated: more were sent than the reader accepts, or it has none free")
	errUnwantedFds = errors.New("descriptors sent where none belong")

	// errFdsLost: a frame's descriptors could not be received for want of
	// free descriptors; the frame itself was read.
	errFdsLost = os.NewSyscallError("recvmsg", syscall.EMFILE)
)

// WriteFds writes all of data to c and passes files with its first byte, so
// that a ReadFds on the other end receives them. It does not close files.
// Data must not be empty when files are given. An error is an [*Error]
// naming the operation "write fds".
func WriteFds(c *net.UnixConn, data []byte, files ...*os.File) error {
	return opError("write fds", "", withFds(files, func(fds []int) error { return writeMsg(c, data, fds) }))
}

// ReadFds reads exactly len(data) bytes from c, as io.ReadFull does, and
// returns the descriptors that came with them, at most max of them, as files
// the caller owns. When more than max descriptors arrive, or any other error
// occurs, every descriptor received is closed and no file is returned. The
// end of the stream is io.EOF, or io.ErrUnexpectedEOF partway through data,
// unwrapped as io.ReadFull and os.File.Read return it; any other error is
// an [*Error] naming the operation "read fds".
func ReadFds(c *net.UnixConn, data []byte, max int) (n int, files []*os.File, err error) {
	var oob []byte
	if max > 0 {
		oob = make([]byte, syscall.CmsgSpace(max*4))
	}
	n, fds, err := readMsg(c, data, oob, max)
	for _, fd := range fds {
		files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("forkserver-fd-%d", fd)))
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return n, files, err
	}
	return n, files, opError("read fds", "", err)
}

// withFds calls fn with the descriptors of files, keeping each file from
// being closed while fn runs. It never calls Fd, which would make a pollable
// file blocking.
func withFds(files []*os.File, fn func(fds []int) error) error {
	fds := make([]int, 0, len(files))
	var nest func(i int) error
	nest = func(i int) error {
		if i == len(files) {
			return fn(fds)
		}
		if files[i] == nil {
			return fmt.Errorf("file %d is nil", i)
		}
		rc, err := files[i].SyscallConn()
		if err != nil {
			return err
		}
		var ferr error
		err = rc.Control(func(fd uintptr) {
			fds = append(fds, int(fd))
			ferr = nest(i + 1)
		})
		if err != nil {
			return err
		}
		return ferr
	}
	return nest(0)
}

// writeMsg writes all of p to c with fds attached to its first bytes.
func writeMsg(c *net.UnixConn, p []byte, fds []int) error {
	if len(fds) == 0 {
		_, err := c.Write(p)
		return err
	}
	if len(p) == 0 {
		return errNoData
	}
	n, _, err := c.WriteMsgUnix(p, syscall.UnixRights(fds...), nil)
	if err == nil && n < len(p) {
		_, err = c.Write(p[n:])
	}
	return err
}

// sendMsgFd writes all of p to the blocking socket fd with fds attached to
// its first byte.
func sendMsgFd(fd int, p []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	for len(p) > 0 {
		n, err := sendmsg(fd, p, oob)
		if err != nil {
			return os.NewSyscallError("sendmsg", err)
		}
		p, oob = p[n:], nil
	}
	return nil
}

// readMsg reads exactly len(p) bytes from c into p, with oob as the control
// buffer, and returns the descriptors that came with them. On error, and when
// more than max arrive, it closes every descriptor it received. Descriptors
// that did not fit, because they were too many or because this process has
// no free descriptor left, are an error only once all of p is read, so that
// the stream stays in step.
func readMsg(c *net.UnixConn, p, oob []byte, max int) (n int, fds []int, err error) {
	return recvMsg(connRecv(c), p, oob, max)
}

// recvFunc receives into p, with oob as the control buffer, as
// (*net.UnixConn).ReadMsgUnix does; 0 bytes and no error is end-of-file.
type recvFunc func(p, oob []byte) (n, oobn, flags int, err error)

func connRecv(c *net.UnixConn) recvFunc {
	return func(p, oob []byte) (n, oobn, flags int, err error) {
		n, oobn, flags, _, err = c.ReadMsgUnix(p, oob)
		return n, oobn, flags, err
	}
}

// fdRecv receives on the blocking socket fd: the calling thread waits in
// recvmsg itself, with no hand-over through the runtime's poller.
func fdRecv(fd int) recvFunc {
	return func(p, oob []byte) (n, oobn, flags int, err error) {
		n, oobn, flags, err = recvmsg(fd, p, oob)
		return n, oobn, flags, os.NewSyscallError("recvmsg", err)
	}
}

// recvMsg is readMsg over any recvFunc.
func recvMsg(recv recvFunc, p, oob []byte, max int) (n int, fds []int, err error) {
	truncated := false
	for n < len(p) && err == nil {
		m, oobn, flags, rerr := recv(p[n:], oob)
		n += m
		truncated = truncated || flags&syscall.MSG_CTRUNC != 0
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				err = perr
			}
		}
		switch {
		case err != nil:
		case errors.Is(rerr, io.EOF) || rerr == nil && m == 0:
			err = io.EOF
			if n > 0 {
				err = io.ErrUnexpectedEOF
			}
		case rerr != nil:
			err = rerr
		}
	}
	if err == nil && (truncated || len(fds) > max) {
		err = errTruncated
		if max == 0 {
			err = errUnwantedFds
		}
	}
	if err != nil {
		closeFds(fds)
		return n, nil, err
	}
	return n, fds, nil
}

// parseRights returns every descriptor in a control message buffer.
func parseRights(oob []byte) ([]int, error) {
	scms, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, os.NewSyscallError("parse control message", err)
	}
	var fds []int
	for i := range scms {
		if scms[i].Header.Level != syscall.SOL_SOCKET || scms[i].Header.Type != syscall.SCM_RIGHTS {
			continue
		}
		got, err := syscall.ParseUnixRights(&scms[i])
		if err != nil {
			return fds, os.NewSyscallError("parse unix rights", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

// parseHeader is [wire.ParseHeader], and decodeBody [wire.DecodeBody], with
// the codec's errors made errors of this package.
func parseHeader(b []byte) (wire.Header, error) {
	h, err := wire.ParseHeader(b)
	if err != nil {
		return h, fmt.Errorf("%w", err)
	}
	return h, nil
}

func decodeBody(t wire.Type, body []byte) (wire.Message, error) {
	m, err := wire.DecodeBody(t, body)
	if err != nil {
		return m, fmt.Errorf("%w", err)
	}
	return m, nil
}

// frame is one received frame and the descriptors that came with it, which
// its receiver owns.
type frame struct {
	id  uint32
	msg wire.Message
	fds []int
}

// frameReader reads frames from one connection, one at a time.
type frameReader struct {
	recv recvFunc
	hdr  [wire.HeaderSize]byte
	oob  []byte
}

func newFrameReader(c *net.UnixConn) *frameReader { return newRecvFrameReader(connRecv(c)) }

func newRecvFrameReader(recv recvFunc) *frameReader {
	return &frameReader{recv: recv, oob: make([]byte, syscall.CmsgSpace(wire.MaxFds*4))}
}

// read reads the next frame. The descriptors of a frame must arrive with its
// header and be exactly as many as its type calls for. On any error every
// descriptor received is closed; io.EOF means the peer closed the connection
// between frames.
//
// When the descriptors of a frame could not all be received although the
// header counts no more than the buffer holds, this process has run out of
// descriptors: read returns the frame without them and errFdsLost, and the
// connection stays usable.
func (r *frameReader) read() (frame, error) {
	_, fds, err := recvMsg(r.recv, r.hdr[:], r.oob, wire.MaxFds)
	lost := errors.Is(err, errTruncated)
	if err != nil && !lost {
		return frame{}, err
	}
	h, err := parseHeader(r.hdr[:])
	if err == nil && lost {
		f, err := r.readBody(h, nil, false)
		if err == nil {
			err = errFdsLost
		}
		return f, err
	}
	if err == nil && int(h.NumFds) != len(fds) {
		err = fmt.Errorf("%w: header says %d descriptors, %d arrived", wire.ErrMalformed, h.NumFds, len(fds))
	}
	if err != nil {
		closeFds(fds)
		return frame{}, err
	}
	return r.readBody(h, fds, true)
}

// readBody reads the body of the frame h, which fds came with; check says
// whether they must be what the body calls for.
func (r *frameReader) readBody(h wire.Header, fds []int, check bool) (frame, error) {
	// The body grows as it arrives: a peer that sends a header and then
	// nothing pins no more than a chunk.
	const chunk = 64 << 10
	var body []byte
	var err error
	for len(body) < int(h.Len) && err == nil {
		n := len(body)
		body = append(body, make([]byte, min(int(h.Len)-n, chunk))...)
		_, _, err = recvMsg(r.recv, body[n:], nil, 0)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	var m wire.Message
	if err == nil {
		m, err = decodeBody(h.Type, body)
	}
	if err == nil && check && m.NumFds() != len(fds) {
		err = fmt.Errorf("%w: type %d carries %d descriptors, %d arrived", wire.ErrMalformed, h.Type, m.NumFds(), len(fds))
	}
	if err != nil {
		closeFds(fds)
		return frame{}, err
	}
	return frame{id: h.ID, msg: m, fds: fds}, nil
}

// unixConn turns a connected AF_UNIX socket into a *net.UnixConn that the
// runtime poller drives. It takes ownership of fd.
func unixConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "forkserver-socket")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("descriptor %d is not a unix socket", fd)
	}
	return uc, nil
}

// socketConnPair returns a connected pair: one end as a *net.UnixConn, the
// other as a raw close-on-exec descriptor the caller owns.
func socketConnPair() (*net.UnixConn, int, error) {
	a, b, err := socketpair()
	if err != nil {
		return nil, -1, err
	}
	c, err := unixConn(a)
	if err != nil {
		syscall.Close(b)
		return nil, -1, err
	}
	return c, b, nil
}

// dupCloexec returns a close-on-exec duplicate of fd.
func dupCloexec(fd int) (int, error) {
	nfd, err := fcntl(fd, syscall.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return nfd, nil
}
