//go:build !linux && !darwin

package forkserver

// This system has no fork server: Start returns errors.ErrUnsupported, and
// so do WriteFds and ReadFds. The rest of the package compiles so that
// programs using it build everywhere.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// WriteFds is not supported on this system.
func WriteFds(c *net.UnixConn, data []byte, files ...*os.File) error {
	return errors.ErrUnsupported
}

// ReadFds is not supported on this system.
func ReadFds(c *net.UnixConn, data []byte, max int) (n int, files []*os.File, err error) {
	return 0, nil, errors.ErrUnsupported
}

func startServer([]string) (*Server, error) { return nil, errors.ErrUnsupported }

func runRole(role string) {
	fmt.Fprintf(os.Stderr, "forkserver: %s=%q: %v\n", roleEnv, role, errors.ErrUnsupported)
	os.Exit(2)
}

type frameReader struct{}

func newFrameReader(*net.UnixConn) *frameReader   { return nil }
func (*frameReader) read() (frame, error)         { return frame{}, errors.ErrUnsupported }
func socketConnPair() (*net.UnixConn, int, error) { return nil, -1, errors.ErrUnsupported }
func writeMsg(*net.UnixConn, []byte, []int) error { return errors.ErrUnsupported }
func withFds([]*os.File, func([]int) error) error { return errors.ErrUnsupported }
func closeFds([]int)                              {}
func reap(int) (ws syscall.WaitStatus)            { return ws }
func exitFromMsg(m *exitMsg) *Exit                { return &Exit{Pid: int(m.pid)} }
