//go:build !linux && !darwin

package forkserver

// This system has no fork server: Start returns an *Error matching
// errors.ErrUnsupported, and so do WriteFds and ReadFds. The rest of the API exists so that programs
// using the package build everywhere; with no Server, none of it can be
// reached.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// stdio stands for the copying of a child's standard streams, which never
// happens here.
type stdio struct{ done chan struct{} }

func runRole(role string) {
	fmt.Fprintf(os.Stderr, "forkserver: %s=%q: %v\n", roleEnv, role, errors.ErrUnsupported)
	os.Exit(2)
}

// Start is not supported on this system.
func Start(cfg *Config) (*Server, error) { return nil, unsupported("start") }

// WriteFds is not supported on this system.
func WriteFds(c *net.UnixConn, data []byte, files ...*os.File) error {
	return unsupported("write fds")
}

// ReadFds is not supported on this system.
func ReadFds(c *net.UnixConn, data []byte, max int) (n int, files []*os.File, err error) {
	return 0, nil, unsupported("read fds")
}

func (s *Server) Fork(ctx context.Context, fn Func, attr *Attr) (*Process, error) {
	return nil, unsupported("fork")
}

func (s *Server) Exec(ctx context.Context, path string, argv []string, attr *Attr) (*Process, error) {
	return nil, unsupported("exec")
}

func (s *Server) Output(ctx context.Context, fn Func, attr *Attr) ([]byte, error) {
	return nil, unsupported("fork")
}

func (s *Server) ExecOutput(ctx context.Context, path string, argv []string, attr *Attr) ([]byte, error) {
	return nil, unsupported("exec")
}

func (s *Server) KillAll(sig os.Signal) error                         { return unsupported("kill all") }
func (s *Server) KillAllGroups(sig os.Signal) error                   { return unsupported("kill all groups") }
func (s *Server) Eval(ctx context.Context, fn Func, arg []byte) error { return unsupported("eval") }
func (s *Server) Stop(ctx context.Context) error                      { return unsupported("stop") }
func (s *Server) Detach() error                                       { return unsupported("detach") }
func (s *Server) Close() error                                        { return unsupported("close") }
func (s *Server) WaitWarm(ctx context.Context) error                  { return unsupported("wait warm") }
func (s *Server) Stats() Stats                                        { return Stats{} }
func (p *Process) Wait() (*Exit, error)                               { return nil, unsupported("wait") }
func (p *Process) Signal(sig os.Signal) error                         { return unsupported("signal") }
func (p *Process) SignalGroup(sig os.Signal) error                    { return unsupported("signal group") }
func (p *Process) Kill() error                                        { return unsupported("signal") }
func (c *Cmd) Start() error                                           { return unsupported("start") }
func (c *Cmd) Wait() error                                            { return unsupported("wait") }
func (e *Exit) UserTime() time.Duration                               { return 0 }
func (e *Exit) SystemTime() time.Duration                             { return 0 }

// unsupported is the error of op on this system.
func unsupported(op string) error { return &Error{Op: op, Err: errors.ErrUnsupported} }
