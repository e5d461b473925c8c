package forkserver

// What the server asks of the kernel, on Linux, as it creates a child.

import (
	"runtime"
	"sync"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

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
			if err := prctlNoNewPrivs(); err != nil {
				ready <- err
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
