package forkserver

// Written by hand, not generated: the system calls and kernel hooks that
// package syscall lacks or spells differently on Linux.

import (
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/forkserver/forkserver/internal/wire"
)

// fdDir lists the open descriptors of the process reading it.
const fdDir = "/proc/self/fd"

// socketpair returns a connected pair of close-on-exec stream sockets.
func socketpair() (int, int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socketpair", err)
	}
	return fds[0], fds[1], nil
}

// executable names the running binary in a way an upgrade on disk cannot
// change: the server and every child run exactly this program's code.
func executable() (string, error) { return "/proc/self/exe", nil }

// serverSysProcAttr makes the kernel send the server SIGTERM when the
// program dies, a second guard behind the end-of-file on its connection.
// Not SIGKILL: the server must live on long enough to kill its children.
func serverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// recvmsgFlags makes every descriptor received close-on-exec from birth.
const recvmsgFlags = syscall.MSG_CMSG_CLOEXEC

// dup2 makes newfd a copy of oldfd that is not close-on-exec.
func dup2(oldfd, newfd int) error { return syscall.Dup3(oldfd, newfd, 0) }

var cloneFlags = map[Namespace]uintptr{
	NewUser:  syscall.CLONE_NEWUSER,
	NewMount: syscall.CLONE_NEWNS,
	NewPID:   syscall.CLONE_NEWPID,
	NewNet:   syscall.CLONE_NEWNET,
	NewUTS:   syscall.CLONE_NEWUTS,
	NewIPC:   syscall.CLONE_NEWIPC,
}

// sysProcAttr returns what the kernel must apply as it creates a child with
// st: the namespaces, and for an external program, which cannot apply
// anything itself, every setting it can.
func sysProcAttr(st *wire.Settings, external bool) (*syscall.SysProcAttr, error) {
	sys := new(syscall.SysProcAttr)
	for ns, flag := range cloneFlags {
		if Namespace(st.Namespaces)&ns != 0 {
			sys.Cloneflags |= flag
		}
	}
	for _, m := range st.UidMaps {
		sys.UidMappings = append(sys.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	for _, m := range st.GidMaps {
		sys.GidMappings = append(sys.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	if !external {
		return sys, nil
	}
	if len(st.Rlimits) > 0 {
		return nil, errExecSettings
	}
	sys.Setsid = st.Set&wire.SetSetsid != 0
	sys.Setpgid = st.Set&wire.SetSetpgid != 0
	sys.Chroot = st.Chroot
	sys.Pdeathsig = syscall.Signal(st.Pdeathsig)
	if st.Set&wire.SetCredential != 0 {
		sys.Credential = &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: st.Groups}
	}
	return sys, nil
}

// prSetNoNewPrivs is PR_SET_NO_NEW_PRIVS, which package syscall lacks.
const prSetNoNewPrivs = 38

// noNewPrivsThread is an OS thread with no_new_privs set, on which the
// server forks the children that must have it: the flag belongs to a
// thread, a child inherits it from the thread that forks it, and it cannot
// be set on every thread of a Go program built with cgo.
var noNewPrivsThread struct {
	once  sync.Once
	calls chan func()
	err   error
}

// withNoNewPrivs runs fn on a thread that has no_new_privs set.
func withNoNewPrivs(fn func()) error {
	t := &noNewPrivsThread
	t.once.Do(func() {
		t.calls = make(chan func())
		ready := make(chan error)
		go func() {
			runtime.LockOSThread() // for good: the thread never sheds the flag
			_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0)
			if errno != 0 {
				ready <- os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
				return // the locked thread exits with the goroutine
			}
			ready <- nil
			for call := range t.calls {
				call()
			}
		}()
		t.err = <-ready
	})
	if t.err != nil {
		return t.err
	}
	done := make(chan struct{})
	t.calls <- func() { fn(); close(done) }
	<-done
	return nil
}

// enablePdeathsig asks for sig when the parent, the server, dies.
func enablePdeathsig(sig syscall.Signal) error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(sig), 0)
	if errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_PDEATHSIG)", errno)
	}
	return nil
}

// pipe returns a close-on-exec pipe: its read end, then its write end.
func pipe() (r, w int, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	return p[0], p[1], nil
}

// poll waits, with no timeout, until one of pfds has an event. It blocks
// the calling thread, never the runtime's poller.
func poll(pfds []pollFd) error {
	_, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfds[0])), uintptr(len(pfds)), 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
