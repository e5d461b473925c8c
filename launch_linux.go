package forkserver

// What the server asks of the kernel, on Linux, as it creates a child.

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/forkserver/forkserver/internal/sandbox"
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
	if st.MemoryLimit != 0 {
		return nil, errExecMemoryLimit
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

// confiningThreads are OS threads on which the server creates confined
// children (see confinedSpawn): each has no_new_privs set, which a child
// inherits from the thread that forks it, and an empty bounding set, so
// that what the child executes holds no capability, root or not; the
// second keeps CAP_SYS_CHROOT inheritable, for a child that enters its
// Attr.Chroot itself. Both belong to a thread, and cannot be set on every
// thread of a Go program built with cgo. The threads keep their effective
// capabilities, which the kernel uses as it creates the child: its
// namespaces and, from a root server, its credential.
var confiningThreads [2]struct {
	once  sync.Once
	calls chan func()
	err   error
}

// onConfiningThread runs fn on a confining thread, the one that keeps
// CAP_SYS_CHROOT if chroot.
func onConfiningThread(chroot bool, fn func()) error {
	t := &confiningThreads[0]
	var keep uint64
	if chroot {
		t, keep = &confiningThreads[1], 1<<sandbox.CapSysChroot
	}
	t.once.Do(func() {
		t.calls = make(chan func())
		ready := make(chan error)
		go func() {
			runtime.LockOSThread() // for good: the thread never sheds what it is given
			err := prctlNoNewPrivs()
			if err == nil {
				err = sandbox.LimitExec(keep)
			}
			ready <- err
			if err != nil {
				return // the locked thread exits with the goroutine
			}
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

// confineCredential has the kernel give a confined child st's credential
// as it creates it, and keep CAP_SYS_CHROOT through the change for a child
// that enters its Chroot itself.
func confineCredential(sys *syscall.SysProcAttr, st *wire.Settings) {
	sys.Credential = &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: st.Groups}
	if st.Chroot != "" && st.Uid != 0 {
		sys.AmbientCaps = []uintptr{sandbox.CapSysChroot}
	}
}

// privileged reports whether this process holds any capability, which a
// child created on a plain thread would inherit: root's, usually.
var privileged = sync.OnceValue(func() bool {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapPrm:"); ok {
			return strings.Trim(strings.TrimSpace(v), "0") != ""
		}
	}
	return os.Geteuid() == 0
})
