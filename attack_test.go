//go:build linux && amd64

package forkserver_test

// Attacks on the sandbox from inside a child, as an attacker would try
// them: each TestAttack* registers nothing of its own but a try of the
// child "attack", which runs under the README's settings for a child
// handling untrusted input, as root and as nobody (with Credential and
// Namespaces), started warm from a declared sandbox and cold, and reports
// on its Conn what got out (Escaped) and what was refused (Held). A test
// fails for every escape.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/forkserver/forkserver"
	"github.com/forkserver/forkserver/internal/wire"
)

// System call numbers of amd64 that package syscall lacks or names
// differently; alike elsewhere only where noted.
const (
	atkNameToHandleAt = 303
	atkOpenByHandleAt = 304
	atkPrlimit64      = 302
	atkSetns          = 308
	atkKcmp           = 312
	atkMemfdCreate    = 319
	atkExecveat       = 322
	atkBpf            = 321
	atkUserfaultfd    = 323
	atkPidfdOpen      = 434 // every architecture
	atkPidfdSendSig   = 424 // every architecture
	atkPidfdGetfd     = 438 // every architecture
	atkIoUringSetup   = 425 // every architecture
	atkClone3         = 435 // every architecture
	atkFsopen         = 430 // every architecture
	atkKeyctl         = 250
	atkAddKey         = 248
	atkMqOpen         = 240
	atkMqUnlink       = 241
	atkMqTimedsend    = 242
	atkShmget         = 29
	atkShmat          = 30
	atkShmctl         = 31
	atkShmdt          = 67
	atkMsgget         = 68
	atkMsgsnd         = 69
	atkMsgrcv         = 70
	atkMsgctl         = 71
	atkIoprioGet      = 252
	atkIoprioSet      = 251
	atkGetRobustList  = 274
	atkTimerCreate    = 222
	atkVfork          = 58
	atkX32            = 0x40000000

	atkIPCRmid = 0
	atkIPCStat = 2
)

// attackArg is what a try is given.
type attackArg struct {
	Try        string
	Data       string // the README's dataDir, the child's only path
	Inside     string // a file in Data
	Outside    string // a file in no path
	OutsideDir string // the directory of Outside, in no path
	Program    int    // the test's pid
	Server     int
	Keeper     int
	Sibling    int    // a plain child of the program, the victim of the try
	HostUTS    string // the program's UTS namespace
	Shm, Msg   int    // the program's SysV segment and queue
	Mq         string // the program's POSIX message queue
	Secret     string // what the program keeps there
	Sock       string // the program's pathname Unix stream socket
	Dgram      string // and datagram socket
	Abstract   string // and abstract socket, without its NUL
	KeyDesc    string // the description of a key in the program's user keyring
}

// attackReport is what a try reports: what got out, what was refused,
// and what it saw that is neither.
type attackReport struct {
	Escaped, Held, Notes []string
}

func (r *attackReport) escape(format string, a ...any) {
	r.Escaped = append(r.Escaped, fmt.Sprintf(format, a...))
}

func (r *attackReport) held(format string, a ...any) {
	r.Held = append(r.Held, fmt.Sprintf(format, a...))
}

func (r *attackReport) note(format string, a ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, a...))
}

// try records what, whose success (err nil) is an escape.
func (r *attackReport) try(what string, err error) {
	if err == nil {
		r.escape("%s succeeded", what)
	} else {
		r.held("%s: %v", what, err)
	}
}

// tryFd is try for a call that returns a descriptor, which it closes.
func (r *attackReport) tryFd(what string, fd uintptr, errno syscall.Errno) {
	if errno == 0 {
		syscall.Close(int(fd))
	}
	r.try(what, errnoErr(errno))
}

type attackTry func(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error

var (
	attackTries = map[string]attackTry{}
	attackChild forkserver.Func
	// attackHold holds what it was given until it is killed.
	attackHold = forkserver.Register("attack-hold", func(ctx context.Context, c *forkserver.Child) error {
		if c.Conn() != nil {
			c.Conn().Write([]byte{1})
		}
		select {}
	})
	// attackGrandchild reports, as a confined child's child, what it may
	// do: see tryConnWider.
	attackGrandchild forkserver.Func
)

func init() {
	attackChild = forkserver.Register("attack", func(ctx context.Context, c *forkserver.Child) error {
		var a attackArg
		if err := json.Unmarshal(c.Arg(), &a); err != nil {
			return err
		}
		try := attackTries[a.Try]
		if try == nil {
			return fmt.Errorf("no try %q", a.Try)
		}
		var r attackReport
		if err := try(ctx, c, &a, &r); err != nil {
			return err
		}
		return json.NewEncoder(c.Conn()).Encode(&r)
	})
	attackGrandchild = forkserver.Register("attack-grandchild", func(ctx context.Context, c *forkserver.Child) error {
		var a attackArg
		if err := json.Unmarshal(c.Arg(), &a); err != nil {
			return err
		}
		var r attackReport
		gcProbe(&a, &r)
		return json.NewEncoder(c.Conn()).Encode(&r)
	})
	for name, try := range map[string]attackTry{
		"read":        tryRead,
		"handle":      tryHandle,
		"fds":         tryFds,
		"signal":      trySignal,
		"sigio":       trySigio,
		"trace":       tryTrace,
		"network":     tryNetwork,
		"unixpath":    tryUnixPath,
		"meta-out":    tryMetaOutside,
		"meta-ro":     tryMetaReadOnly,
		"fork":        tryFork,
		"caps":        tryCaps,
		"kernel":      tryKernel,
		"keyring":     tryKeyring,
		"sysv":        trySysV,
		"mqueue":      tryMqueue,
		"inotify":     tryInotify,
		"procs":       tryProcs,
		"outlive":     tryOutlive,
		"conn-wider":  tryConnWider,
		"conn-bound":  tryConnBound,
		"conn-rights": tryConnRights,
		"wire-signal": tryWireSignal,
		"exec":        tryExec,
		"misc":        tryMisc,
	} {
		attackTries[name] = try
	}
}

// attackOpts widen the README's settings for a test.
type attackOpts struct {
	proc   bool // list /proc too, as the package's own tests do: a wider policy
	server bool // the README's "child that may fork": a connection with RightFork|RightSignal
}

// attackEnv is one variant: a server, the settings, the files.
type attackEnv struct {
	srv    *forkserver.Server
	attr   forkserver.Attr
	files  sandboxFiles
	nobody bool
	warm   bool
	arg    attackArg
}

// readmeAttr returns the README's settings for a child handling
// untrusted input, with its dataDir, as root or as nobody.
func readmeAttr(dataDir string, nobody bool, o attackOpts) forkserver.Attr {
	ro := []string{dataDir}
	if o.proc {
		ro = append(ro, "/proc")
	}
	attr := forkserver.Attr{
		Socket:       true,
		Paths:        &forkserver.PathPolicy{ReadOnly: ro},
		DenySyscalls: forkserver.SyscallsNetwork | forkserver.SyscallsExec | forkserver.SyscallsTrace,
		NoNewPrivs:   true,
		Rlimits:      []forkserver.Rlimit{{Resource: syscall.RLIMIT_CPU, Cur: 2, Max: 2}},
	}
	if nobody {
		attr.Credential = &forkserver.Credential{Uid: 65534, Gid: 65534}
		attr.Namespaces = forkserver.NewNet | forkserver.NewIPC | forkserver.NewUTS | forkserver.NewPID
	}
	if o.server {
		attr.Server = true
		attr.ServerRights = forkserver.RightFork | forkserver.RightSignal
		attr.ServerMaxChildren = 2
	}
	return attr
}

// attackVariants runs test as root and as nobody, warm and cold, in
// parallel.
func attackVariants(t *testing.T, o attackOpts, test func(t *testing.T, e *attackEnv)) {
	if os.Geteuid() != 0 {
		t.Skip("the attacks are written for root, which can run a child as nobody")
	}
	for _, nobody := range []bool{false, true} {
		for _, warm := range []bool{false, true} {
			name := map[bool]string{false: "root", true: "nobody"}[nobody] + "/" + map[bool]string{false: "cold", true: "warm"}[warm]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := newSandboxFiles(t)
				e := &attackEnv{files: f, nobody: nobody, warm: warm, attr: readmeAttr(f.ReadOnly, nobody, o)}
				cfg := &forkserver.Config{}
				if warm {
					sb := e.attr
					cfg.Sandboxes = []forkserver.Sandbox{{Attr: &sb, Size: 1}}
				}
				e.srv = forkserver.StartWith(t, cfg)
				if err := e.srv.WaitWarm(forkserver.TestContext(t)); err != nil {
					t.Fatal(err)
				}
				uts, _ := os.Readlink("/proc/self/ns/uts")
				e.arg = attackArg{
					Data: f.ReadOnly, Inside: f.Inside, Outside: f.Outside, OutsideDir: filepath.Dir(f.Outside),
					Program: os.Getpid(), Server: e.srv.Pid(), Keeper: forkserver.ProcStatus(t, e.srv.Pid(), "PPid"), HostUTS: uts,
				}
				test(t, e)
				if warm && !o.server && e.srv.Stats().WarmForks == 0 { // a Fork with a Server connection is never the program's warm one
					t.Errorf("no Fork was served warm: the variant tested cold")
				}
			})
		}
	}
}

// sibling forks a plain child of the program, which echoes its socket,
// and sets arg.Sibling to it. The returned func fails t unless it still
// runs, then ends it.
func (e *attackEnv) sibling(t *testing.T) func() {
	t.Helper()
	p := fork(t, e.srv, echo, &forkserver.Attr{Socket: true, Dir: e.arg.OutsideDir, Env: []string{"SECRET=sibling-secret"}})
	e.arg.Sibling = p.Pid
	return func() {
		t.Helper()
		p.Conn().SetDeadline(time.Now().Add(forkserver.HangBound))
		_, err := p.Conn().Write([]byte{'x'})
		b := make([]byte, 1)
		if err == nil {
			_, err = io.ReadFull(p.Conn(), b)
		}
		if err != nil {
			t.Errorf("ESCAPE: the sibling %d no longer answers: %v (%s)", p.Pid, err, forkserver.Wait(t, p))
			return
		}
		p.Conn().Close()
		forkserver.WaitSuccess(t, p)
	}
}

// start forks the attack with try and returns the child, whose report
// report reads.
func (e *attackEnv) start(t *testing.T, try string, files ...*os.File) *forkserver.Process {
	t.Helper()
	a := e.arg
	a.Try = try
	arg, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	attr := e.attr
	attr.Arg, attr.Files = arg, files
	return fork(t, e.srv, attackChild, &attr)
}

// report reads p's report, waits for p, and fails t for every escape.
func (e *attackEnv) report(t *testing.T, p *forkserver.Process) attackReport {
	t.Helper()
	var r attackReport
	p.Conn().SetReadDeadline(time.Now().Add(forkserver.HangBound))
	if err := json.NewDecoder(p.Conn()).Decode(&r); err != nil {
		t.Fatalf("no report from the child: %v (%s)", err, forkserver.Wait(t, p))
	}
	forkserver.WaitSuccess(t, p)
	for _, s := range r.Escaped {
		t.Errorf("ESCAPE: %s", s)
	}
	for _, s := range r.Held {
		t.Logf("held: %s", s)
	}
	for _, s := range r.Notes {
		t.Logf("note: %s", s)
	}
	if len(r.Escaped)+len(r.Held) == 0 {
		t.Error("the child tried nothing")
	}
	return r
}

// run is start and report.
func (e *attackEnv) run(t *testing.T, try string, files ...*os.File) attackReport {
	t.Helper()
	return e.report(t, e.start(t, try, files...))
}

func cstr(s string) *byte {
	b, _ := syscall.BytePtrFromString(s)
	return b
}

func ptr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// ---- Reads outside Paths ----

func tryRead(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	read := func(what, path string) {
		b, err := os.ReadFile(path)
		if err == nil {
			r.escape("read %s (%s): %q", what, path, b[:min(len(b), 32)])
		} else {
			r.held("read %s: %v", what, err)
		}
	}
	read("inside (control)", a.Inside)
	if len(r.Escaped) != 1 {
		return errors.New("the control read failed")
	}
	r.Escaped = nil
	read("outside", a.Outside)
	read("/etc/passwd", "/etc/passwd")
	read("through ..", filepath.Join(a.Data, "..", filepath.Base(a.Outside)))
	if dir, err := syscall.Open(a.Data, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0); err == nil {
		fd, err := syscall.Openat(dir, "../"+filepath.Base(a.Outside), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		r.tryFd("openat(data, ../outside)", uintptr(fd), errnoOf(err))
		syscall.Close(dir)
	}
	_, err := os.ReadDir("/")
	r.try("list /", err)
	_, err = os.ReadDir(a.OutsideDir)
	r.try("list the outside directory", err)
	// /proc routes: they fail at once where /proc is not listed.
	if fd, err := syscall.Open(a.Outside, oPath|syscall.O_CLOEXEC, 0); err == nil {
		read("/proc/self/fd of an O_PATH descriptor", fmt.Sprintf("/proc/self/fd/%d", fd))
		syscall.Close(fd)
	} else {
		r.note("O_PATH open of outside: %v", err)
	}
	read("/proc/self/root", "/proc/self/root"+a.Outside)
	read("/proc/thread-self/root", "/proc/thread-self/root"+a.Outside)
	for _, p := range []struct {
		name string
		pid  int
	}{{"program", a.Program}, {"server", a.Server}, {"keeper", a.Keeper}, {"sibling", a.Sibling}, {"init", 1}} {
		if p.pid == 0 {
			continue
		}
		read(p.name+"'s root", fmt.Sprintf("/proc/%d/root%s", p.pid, a.Outside))
		read(p.name+"'s environ", fmt.Sprintf("/proc/%d/environ", p.pid))
		read(p.name+"'s cwd", fmt.Sprintf("/proc/%d/cwd/%s", p.pid, filepath.Base(a.Outside)))
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid)); err == nil {
			r.note("%s's cmdline, which /proc shows anyone, reads %d bytes", p.name, len(b)) // /proc listed: not outside the paths
		}
		read(p.name+"'s maps", fmt.Sprintf("/proc/%d/maps", p.pid))
	}
	read("/dev/shm file of the program", filepath.Join("/dev/shm", fmt.Sprintf("forkserver-attack-%d", a.Program)))
	return nil
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	if err != nil {
		return syscall.EINVAL
	}
	return 0
}

func tryHandle(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	// struct file_handle: handle_bytes u32, handle_type s32, f_handle.
	var fh [8 + 128]byte
	binary.NativeEndian.PutUint32(fh[:], 128)
	var mountID int32
	_, _, errno := syscall.Syscall6(atkNameToHandleAt, ^uintptr(99) /* AT_FDCWD */, ptr(cstr(a.Outside)), ptr(&fh[0]), ptr(&mountID), 0, 0)
	if errno != 0 {
		r.held("name_to_handle_at: %v", errno)
		return nil
	}
	r.note("name_to_handle_at of outside works (metadata, as stat)")
	root, err := syscall.Open(a.Data, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0) // on the same file system as outside
	if err != nil {
		r.held("open data: %v", err)
		return nil
	}
	defer syscall.Close(root)
	fd, _, errno := syscall.Syscall(atkOpenByHandleAt, uintptr(root), ptr(&fh[0]), syscall.O_RDONLY|syscall.O_CLOEXEC)
	r.tryFd("open_by_handle_at", fd, errno)
	return nil
}

// ---- What the child holds ----

func tryFds(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	var conn int
	raw, err := c.Conn().SyscallConn()
	if err != nil {
		return err
	}
	raw.Control(func(fd uintptr) { conn = int(fd) })
	sockets := 0
	for fd := 3; fd < 1024; fd++ {
		if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); errno != 0 {
			continue
		}
		target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)) // readlink needs no Landlock right
		switch {
		case fd == conn:
			r.held("fd %d: the Conn (%s)", fd, target)
		case strings.HasPrefix(target, "anon_inode:[eventpoll]"), strings.HasPrefix(target, "anon_inode:[eventfd]"):
			r.held("fd %d: the runtime's %s", fd, target)
		case strings.HasPrefix(target, "socket:"):
			sockets++
			ucred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
			peer := "?"
			if err == nil {
				peer = fmt.Sprint(ucred.Pid)
			}
			if sockets == 1 && c.Server() != nil {
				r.held("fd %d: a socket, its Server connection (peer pid %s)", fd, peer)
			} else {
				r.escape("fd %d: an unexplained socket, peer pid %s", fd, peer)
			}
		default:
			r.escape("fd %d: an inherited descriptor %q", fd, target)
		}
	}
	for fd := 0; fd < 3; fd++ {
		target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		r.note("fd %d: %s (the server's standard descriptor)", fd, target)
	}
	return nil
}

// ---- Signals, tracing ----

// targets are the processes outside the child's domain it knows of.
func (a *attackArg) targets() []struct {
	name string
	pid  int
} {
	var out []struct {
		name string
		pid  int
	}
	for _, t := range []struct {
		name string
		pid  int
	}{{"program", a.Program}, {"server", a.Server}, {"keeper", a.Keeper}, {"sibling", a.Sibling}, {"init", 1}} {
		if t.pid != 0 && t.pid != os.Getpid() {
			out = append(out, t)
		}
	}
	return out
}

func trySignal(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	// Signal 0: the permission of any signal, harmless if it is had.
	for _, t := range a.targets() {
		r.try("kill("+t.name+", 0)", syscall.Kill(t.pid, 0))
		_, _, errno := syscall.RawSyscall(syscall.SYS_TGKILL, uintptr(t.pid), uintptr(t.pid), 0)
		r.try("tgkill("+t.name+", 0)", errnoErr(errno))
		var info [128]byte
		binary.NativeEndian.PutUint32(info[8:], uint32(0xffffffff)) // si_code SI_QUEUE (-1)
		_, _, errno = syscall.RawSyscall(syscall.SYS_RT_SIGQUEUEINFO, uintptr(t.pid), 0, ptr(&info[0]))
		r.try("rt_sigqueueinfo("+t.name+", 0)", errnoErr(errno))
		pidfd, _, errno := syscall.RawSyscall(atkPidfdOpen, uintptr(t.pid), 0, 0)
		if errno != 0 {
			r.held("pidfd_open(%s): %v", t.name, errno)
			continue
		}
		_, _, errno = syscall.RawSyscall6(atkPidfdSendSig, pidfd, 0, 0, 0, 0, 0)
		r.try("pidfd_send_signal("+t.name+", 0)", errnoErr(errno))
		syscall.Close(int(pidfd))
	}
	// A timer's signal goes to a thread of this process only.
	if a.Program != 0 {
		var sev [64]byte
		binary.NativeEndian.PutUint32(sev[8:], uint32(syscall.SIGKILL)) // sigev_signo
		binary.NativeEndian.PutUint32(sev[12:], 4)                      // SIGEV_THREAD_ID
		binary.NativeEndian.PutUint32(sev[16:], uint32(a.Program))      // sigev_notify_thread_id
		var id int32
		_, _, errno := syscall.RawSyscall(atkTimerCreate, 1, ptr(&sev[0]), ptr(&id))
		r.try("timer_create aimed at the program", errnoErr(errno))
	}
	return nil
}

// trySigio has a pipe send SIGKILL to the sibling, as the owner of its
// read end, when it is written to.
func trySigio(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), syscall.F_SETOWN, uintptr(a.Sibling))
	if errno != 0 {
		r.held("F_SETOWN the sibling: %v", errno)
		return nil
	}
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), 10 /* F_SETSIG */, uintptr(syscall.SIGKILL))
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), syscall.F_SETFL, syscall.O_ASYNC)
	syscall.Write(p[1], []byte{1})
	r.held("SIGIO(SIGKILL) to the sibling sent: the program checks that it lives")
	return nil
}

func tryTrace(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
	r.try("PTRACE_TRACEME", errnoErr(errno))
	for _, t := range a.targets() {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_PTRACE, 0x4206 /* PTRACE_SEIZE */, uintptr(t.pid), 0, 0, 0, 0)
		if errno == 0 {
			syscall.RawSyscall6(syscall.SYS_PTRACE, syscall.PTRACE_DETACH, uintptr(t.pid), 0, 0, 0, 0)
		}
		r.try("PTRACE_SEIZE "+t.name, errnoErr(errno))
		var buf [8]byte
		local := [2]uintptr{ptr(&buf[0]), 8}
		remote := [2]uintptr{0x400000, 8}
		_, _, errno = syscall.Syscall6(sysProcessVMReadv["amd64"], uintptr(t.pid), ptr(&local), 1, ptr(&remote), 1, 0)
		if errno == syscall.EFAULT {
			errno = 0 // allowed: the address was just not mapped
		}
		r.try("process_vm_readv "+t.name, errnoErr(errno))
		_, _, errno = syscall.Syscall6(atkKcmp, uintptr(os.Getpid()), uintptr(t.pid), 0 /* KCMP_FILE */, 0, 0, 0)
		r.try("kcmp "+t.name, errnoErr(errno))
		if pidfd, _, errno := syscall.RawSyscall(atkPidfdOpen, uintptr(t.pid), 0, 0); errno == 0 {
			fd, _, errno := syscall.RawSyscall(atkPidfdGetfd, pidfd, 0, 0)
			r.tryFd("pidfd_getfd "+t.name, fd, errno)
			syscall.Close(int(pidfd))
		}
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", t.pid), os.O_RDONLY, 0)
		if err == nil {
			f.Close()
		}
		r.try("open /proc/"+t.name+"/mem", err)
		var head, size uintptr
		_, _, errno = syscall.RawSyscall(atkGetRobustList, uintptr(t.pid), ptr(&head), ptr(&size))
		r.try("get_robust_list "+t.name, errnoErr(errno))
		// perf_event_open of another process: struct perf_event_attr
		// with type PERF_TYPE_SOFTWARE, config PERF_COUNT_SW_TASK_CLOCK.
		var attr [128]byte
		binary.NativeEndian.PutUint32(attr[0:], 1)
		binary.NativeEndian.PutUint32(attr[4:], 128)
		binary.NativeEndian.PutUint64(attr[8:], 1)
		binary.NativeEndian.PutUint64(attr[40:], 1<<5|1<<6) // exclude_kernel, exclude_hv
		fd, _, errno := syscall.Syscall6(syscall.SYS_PERF_EVENT_OPEN, ptr(&attr[0]), uintptr(t.pid), ^uintptr(0), ^uintptr(0), 8 /* PERF_FLAG_FD_CLOEXEC */, 0)
		r.tryFd("perf_event_open "+t.name, fd, errno)
	}
	// Making itself dumpable opens nothing to it.
	_, _, errno = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 1, 0)
	r.note("PR_SET_DUMPABLE: %v", errno)
	return nil
}

// ---- Network ----

// int80 runs a 32-bit system call with int 0x80 and returns eax. With
// fork set, a new process that the call makes exits at once by the 64-bit
// exit_group, which no filter denies.
func int80(nr, b, c, d uint32, fork bool) (int32, error) {
	page, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE|syscall.PROT_EXEC, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_32BIT)
	if err != nil {
		return 0, err
	}
	defer syscall.Munmap(page)
	slot := uint32(uintptr(unsafe.Pointer(&page[2048])))
	code := []byte{0xb8}
	code = binary.LittleEndian.AppendUint32(code, nr)
	code = append(code, 0xbb)
	code = binary.LittleEndian.AppendUint32(code, b)
	code = append(code, 0xb9)
	code = binary.LittleEndian.AppendUint32(code, c)
	code = append(code, 0xba)
	code = binary.LittleEndian.AppendUint32(code, d)
	code = append(code, 0xcd, 0x80) // int 0x80
	if fork {
		code = append(code, 0x85, 0xc0, 0x75, 0x09) // test eax, eax; jnz +9
		code = append(code, 0xb8, 231, 0, 0, 0)     // mov eax, 231 (exit_group)
		code = append(code, 0x31, 0xff, 0x0f, 0x05) // xor edi, edi; syscall
	}
	code = append(code, 0x89, 0x04, 0x25) // mov [slot], eax
	code = binary.LittleEndian.AppendUint32(code, slot)
	code = append(code, 0xc3) // ret
	copy(page, code)
	fv := &struct{ fn uintptr }{uintptr(unsafe.Pointer(&page[0]))}
	var f func()
	*(*unsafe.Pointer)(unsafe.Pointer(&f)) = unsafe.Pointer(fv)
	runtime.LockOSThread()
	f()
	runtime.UnlockOSThread()
	return int32(binary.LittleEndian.Uint32(page[2048:])), nil
}

func tryNetwork(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	opened := 0
	for family := 0; family < 46; family++ {
		for _, typ := range []int{syscall.SOCK_STREAM, syscall.SOCK_DGRAM, syscall.SOCK_RAW, syscall.SOCK_SEQPACKET} {
			fd, err := syscall.Socket(family, typ|syscall.SOCK_CLOEXEC, 0)
			if err == nil {
				syscall.Close(fd)
				opened++
				r.escape("socket(%d, %d)", family, typ)
			} else if err != syscall.EPERM {
				r.escape("socket(%d, %d) reached the kernel: %v", family, typ, err)
			}
			// The x32 interface, numbered with bit 30.
			fd2, _, errno := syscall.RawSyscall(atkX32|syscall.SYS_SOCKET, uintptr(family), uintptr(typ), 0)
			if errno == 0 {
				syscall.Close(int(fd2))
				r.escape("x32 socket(%d, %d)", family, typ)
			}
		}
	}
	if opened == 0 {
		r.held("socket of every family and type: EPERM (64-bit and x32)")
	}
	for _, p := range []struct {
		name      string
		dom, typ  int
		allowedOK bool
	}{
		{"unix dgram", syscall.AF_UNIX, syscall.SOCK_DGRAM, false},
		{"unix raw", syscall.AF_UNIX, syscall.SOCK_RAW, false},
		{"unix stream|0x40000000", syscall.AF_UNIX, syscall.SOCK_STREAM | 0x40000000, false},
		{"inet stream", syscall.AF_INET, syscall.SOCK_STREAM, false},
		{"netlink dgram", syscall.AF_NETLINK, syscall.SOCK_DGRAM, false},
		{"unix stream", syscall.AF_UNIX, syscall.SOCK_STREAM, true},
		{"unix seqpacket", syscall.AF_UNIX, syscall.SOCK_SEQPACKET, true},
	} {
		pair, err := syscall.Socketpair(p.dom, p.typ|syscall.SOCK_CLOEXEC, 0)
		if err == nil {
			syscall.Close(pair[0])
			syscall.Close(pair[1])
		}
		if p.allowedOK {
			r.note("socketpair %s: %v (allowed, reaches only its peer)", p.name, err)
		} else {
			r.try("socketpair "+p.name, err)
		}
	}
	// The 32-bit interface through int 0x80: socket (359) and socketcall
	// (102) with SYS_SOCKET, whose arguments are in 32-bit memory.
	ret, err := int80(359, syscall.AF_INET, syscall.SOCK_STREAM, 0, false)
	if err != nil {
		r.note("int 0x80: %v", err)
	} else if ret >= 0 {
		syscall.Close(int(ret))
		r.escape("int 0x80 socket(AF_INET) = %d", ret)
	} else {
		r.held("int 0x80 socket: %v", syscall.Errno(-ret))
	}
	args, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_32BIT)
	if err == nil {
		binary.LittleEndian.PutUint32(args[0:], syscall.AF_INET)
		binary.LittleEndian.PutUint32(args[4:], syscall.SOCK_DGRAM)
		ret, _ = int80(102, 1 /* SYS_SOCKET */, uint32(uintptr(unsafe.Pointer(&args[0]))), 0, false)
		if ret >= 0 {
			syscall.Close(int(ret))
			r.escape("int 0x80 socketcall(SYS_SOCKET) = %d", ret)
		} else {
			r.held("int 0x80 socketcall: %v", syscall.Errno(-ret))
		}
		syscall.Munmap(args)
	}
	var params [120]byte
	fd, _, errno := syscall.RawSyscall(atkIoUringSetup, 4, ptr(&params[0]), 0)
	r.tryFd("io_uring_setup", fd, errno)
	return nil
}

// tryUnixPath tries to reach the program's Unix sockets by path and by
// abstract name from what the child may hold.
func tryUnixPath(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	raw, err := c.Conn().SyscallConn()
	if err != nil {
		return err
	}
	raw.Control(func(fd uintptr) {
		r.try("connect the Conn to the program's stream socket", syscall.Connect(int(fd), &syscall.SockaddrUnix{Name: a.Sock}))
		r.try("sendto by the Conn to the program's datagram socket", syscall.Sendto(int(fd), []byte("x"), 0, &syscall.SockaddrUnix{Name: a.Dgram}))
		r.try("sendto by the Conn to the program's abstract socket", syscall.Sendto(int(fd), []byte("x"), 0, &syscall.SockaddrUnix{Name: "@" + a.Abstract}))
	})
	for _, typ := range []int{syscall.SOCK_STREAM, syscall.SOCK_SEQPACKET} {
		pair, err := syscall.Socketpair(syscall.AF_UNIX, typ|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			r.held("socketpair %d: %v", typ, err)
			continue
		}
		r.try(fmt.Sprintf("connect a socketpair(%d) end to the program's stream socket", typ), syscall.Connect(pair[0], &syscall.SockaddrUnix{Name: a.Sock}))
		r.try(fmt.Sprintf("bind a socketpair(%d) end", typ), syscall.Bind(pair[0], &syscall.SockaddrUnix{Name: "@forkserver-attack-bound"}))
		// Sent to the peer, whatever the address says: the program checks
		// that its datagram socket got nothing.
		syscall.Sendmsg(pair[0], []byte("dgram"), syscall.UnixRights(0), &syscall.SockaddrUnix{Name: a.Dgram}, 0)
		syscall.Close(pair[0])
		syscall.Close(pair[1])
	}
	return nil
}

// ---- Metadata ----

func tryMetaOutside(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	now := time.Now()
	r.try("chmod outside", os.Chmod(a.Outside, 0o666))
	r.try("chown outside", os.Chown(a.Outside, os.Getuid(), os.Getgid()))
	r.try("utimes outside", os.Chtimes(a.Outside, now, now))
	r.try("setxattr outside", syscall.Setxattr(a.Outside, "user.attack", []byte("1"), 0))
	r.try("truncate outside", syscall.Truncate(a.Outside, 0))
	r.try("link outside into data", os.Link(a.Outside, filepath.Join(a.Data, "link")))
	r.try("rename outside", os.Rename(a.Outside, a.Outside+".moved"))
	r.try("symlink in data", os.Symlink(a.Outside, filepath.Join(a.Data, "sym")))
	r.try("mkdir in data", os.Mkdir(filepath.Join(a.Data, "dir"), 0o777))
	r.try("mknod fifo in outside dir", syscall.Mknod(filepath.Join(a.OutsideDir, "fifo"), syscall.S_IFIFO|0o666, 0))
	fd, err := syscall.Open(a.Outside, oPath|syscall.O_CLOEXEC, 0)
	if err == nil {
		r.try("fchmod O_PATH outside", syscall.Fchmod(fd, 0o666))
		_, _, errno := syscall.Syscall6(sysFchmodat2, uintptr(fd), ptr(cstr("")), 0o666, atEmptyPath, 0, 0)
		r.try("fchmodat2 AT_EMPTY_PATH outside", errnoErr(errno))
		_, _, errno = syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fd), 0, 0, 0, 0, 0)
		r.try("utimensat(O_PATH, NULL) outside", errnoErr(errno))
		syscall.Close(fd)
	}
	return nil
}

// tryMetaReadOnly changes the metadata of a file of its read-only
// path through a descriptor open for reading, which Paths lets it open.
func tryMetaReadOnly(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	f, err := os.Open(a.Inside)
	if err != nil {
		return err
	}
	defer f.Close()
	r.try("fchmod 04777 of a read-only file through an O_RDONLY descriptor", f.Chmod(0o4777|os.ModeSetuid))
	raw, _ := f.SyscallConn()
	raw.Control(func(fd uintptr) {
		_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, fd, 0, 0, 0, 0, 0)
		r.try("futimens of a read-only file", errnoErr(errno))
		_, _, errno = syscall.Syscall6(syscall.SYS_FSETXATTR, fd, ptr(cstr("user.attack")), ptr(cstr("1")), 1, 0, 0)
		r.try("fsetxattr user.attack on a read-only file", errnoErr(errno))
		r.try("fchown of a read-only file to its own owner", syscall.Fchown(int(fd), -1, -1))
		r.try("ftruncate of a read-only file", syscall.Ftruncate(int(fd), 0))
	})
	return nil
}

// ---- Processes ----

func tryFork(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	r.try("raw clone", rawFork(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD)))
	r.try("raw clone CLONE_VFORK", rawFork(syscall.SYS_CLONE, syscall.CLONE_VFORK|uintptr(syscall.SIGCHLD)))
	r.try("raw clone CLONE_PARENT", rawFork(syscall.SYS_CLONE, syscall.CLONE_PARENT))
	r.try("raw fork", rawFork(sysFork["amd64"], 0))
	r.try("raw vfork", rawFork(atkVfork, 0))
	r.try("x32 fork", rawFork(atkX32|57, 0))
	// clone3 with struct clone_args{exit_signal: SIGCHLD}.
	var args [88]byte
	binary.NativeEndian.PutUint64(args[32:], uint64(syscall.SIGCHLD))
	pid, _, errno := syscall.RawSyscall(atkClone3, ptr(&args[0]), 88, 0)
	if errno == 0 {
		if pid == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
		var ws syscall.WaitStatus
		syscall.Wait4(int(pid), &ws, 0, nil)
	}
	r.try("clone3", errnoErr(errno))
	ret, err := int80(2 /* i386 fork */, 0, 0, 0, true)
	switch {
	case err != nil:
		r.note("int 0x80: %v", err)
	case ret > 0:
		var ws syscall.WaitStatus
		syscall.Wait4(int(ret), &ws, 0, nil)
		r.escape("int 0x80 fork made %d", ret)
	default:
		r.held("int 0x80 fork: %v", syscall.Errno(-ret))
	}
	return nil
}

func tryExec(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	fd, _, errno := syscall.RawSyscall(atkMemfdCreate, ptr(cstr("attack")), 0, 0)
	if errno != 0 {
		return errno
	}
	defer syscall.Close(int(fd))
	// An empty file: an execution that got past the filter fails with
	// ENOEXEC, and the process stays.
	argv := []*byte{cstr("attack"), nil}
	env := []*byte{nil}
	_, _, errno = syscall.Syscall6(atkExecveat, fd, ptr(cstr("")), ptr(&argv[0]), ptr(&env[0]), atEmptyPath, 0)
	if errno == syscall.EPERM {
		r.held("memfd_create+execveat: EPERM")
	} else {
		r.escape("memfd_create+execveat reached the kernel's exec: %v", errno)
	}
	err := syscall.Exec("/proc/self/exe", []string{"x"}, []string{"FORKSERVER_ROLE=nothing"})
	r.try("execve /proc/self/exe", err)
	ret, err := int80(11 /* i386 execve */, 0, 0, 0, false)
	if err == nil {
		if e := syscall.Errno(-ret); e == syscall.EPERM {
			r.held("int 0x80 execve(NULL): EPERM")
		} else {
			r.escape("int 0x80 execve(NULL) reached the kernel: %v", e)
		}
	}
	return nil
}

// ---- Capabilities and privileged calls ----

func tryCaps(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	hdr := struct {
		version uint32
		pid     int32
	}{version: 0x20080522}
	var data [2]struct{ effective, permitted, inheritable uint32 }
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		r.note("list threads: %v; only this one", err)
		tasks = []os.DirEntry{nil}
	}
	for _, task := range tasks {
		hdr.pid = 0
		if task != nil {
			tid, _ := strconv.Atoi(task.Name())
			hdr.pid = int32(tid)
		}
		if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, ptr(&hdr), ptr(&data[0]), 0); errno != 0 {
			continue
		}
		for i, set := range []uint32{data[0].effective | data[1].effective, data[0].permitted | data[1].permitted, data[0].inheritable | data[1].inheritable} {
			if set != 0 {
				r.escape("thread %d holds capabilities in set %d: %#x", hdr.pid, i, set)
			}
		}
		if task != nil {
			b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
			if err == nil {
				for line := range strings.Lines(string(b)) {
					if k, v, _ := strings.Cut(line, ":"); (k == "CapBnd" || k == "CapAmb") && strings.Trim(strings.TrimSpace(v), "0") != "" {
						r.escape("thread %s: %s %s", task.Name(), k, strings.TrimSpace(v))
					}
				}
			}
		}
	}
	bnd := 0
	for cp := 0; cp < 64; cp++ {
		if v, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, 23 /* PR_CAPBSET_READ */, uintptr(cp), 0); errno == 0 && v == 1 {
			bnd++
		}
	}
	if bnd > 0 {
		r.escape("%d capabilities in the bounding set", bnd)
	} else {
		r.held("bounding set empty")
	}
	if uts, _ := os.Readlink("/proc/self/ns/uts"); uts != "" && uts != a.HostUTS {
		r.try("sethostname in its own UTS namespace", syscall.Sethostname([]byte("attack")))
	} else {
		r.note("sethostname not tried: the host's UTS namespace (%s)", uts)
	}
	r.try("mount tmpfs over data", syscall.Mount("none", a.Data, "tmpfs", 0, ""))
	fd, _, errno := syscall.RawSyscall(atkFsopen, ptr(cstr("tmpfs")), 1, 0)
	r.tryFd("fsopen tmpfs", fd, errno)
	r.try("chroot /", syscall.Chroot("/"))
	if os.Getuid() != 0 {
		r.try("setuid 0", syscall.Setuid(0))
	}
	r.try("unshare CLONE_NEWUSER", syscall.Unshare(syscall.CLONE_NEWUSER))
	r.try("unshare CLONE_NEWNS", syscall.Unshare(syscall.CLONE_NEWNS))
	r.try("unshare CLONE_NEWNET", syscall.Unshare(syscall.CLONE_NEWNET))
	if pidfd, _, errno := syscall.RawSyscall(atkPidfdOpen, uintptr(a.Program), 0, 0); errno == 0 {
		_, _, errno = syscall.RawSyscall(atkSetns, pidfd, syscall.CLONE_NEWNET, 0)
		r.try("setns into the program's network namespace", errnoErr(errno))
		syscall.Close(int(pidfd))
	}
	// Raising a hard limit.
	r.try("raise RLIMIT_CPU", syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: 1000, Max: 1000}))
	return nil
}

// tryKernel tries the kernel surfaces the README's groups leave allowed.
func tryKernel(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	// bpf(BPF_MAP_CREATE, array map of 1 entry)
	var attr [72]byte
	binary.NativeEndian.PutUint32(attr[0:], 2) // BPF_MAP_TYPE_ARRAY
	binary.NativeEndian.PutUint32(attr[4:], 4)
	binary.NativeEndian.PutUint32(attr[8:], 4)
	binary.NativeEndian.PutUint32(attr[12:], 1)
	fd, _, errno := syscall.Syscall(atkBpf, 0, ptr(&attr[0]), 72)
	r.tryFd("bpf map create", fd, errno)
	fd, _, errno = syscall.Syscall(atkUserfaultfd, syscall.O_CLOEXEC, 0, 0)
	r.tryFd("userfaultfd (kernel faults)", fd, errno)
	fd, _, errno = syscall.Syscall(atkUserfaultfd, syscall.O_CLOEXEC|1 /* UFFD_USER_MODE_ONLY */, 0, 0)
	if errno == 0 {
		syscall.Close(int(fd))
	}
	r.note("userfaultfd user mode only: %v (its own memory)", errnoErr(errno))
	_, _, errno = syscall.RawSyscall(syscall.SYS_PERSONALITY, 0x0400000 /* READ_IMPLIES_EXEC */, 0, 0)
	r.note("personality(READ_IMPLIES_EXEC): %v (its own process)", errnoErr(errno))
	_, _, errno = syscall.RawSyscall(syscall.SYS_SYSLOG, 3 /* READ_ALL */, 0, 0)
	r.try("syslog read", errnoErr(errno))
	return nil
}

// tryKeyring reads a key the program put in its user's keyring, and
// adds one there, which outlives the child and is seen by every process
// of that user.
func tryKeyring(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	const userKeyring = ^uintptr(3) // KEY_SPEC_USER_KEYRING (-4)
	id, _, errno := syscall.Syscall6(atkKeyctl, 10 /* KEYCTL_SEARCH */, userKeyring, ptr(cstr("user")), ptr(cstr(a.KeyDesc)), 0, 0)
	if errno != 0 {
		r.held("search the user keyring for the program's key: %v", errno)
	} else {
		buf := make([]byte, 64)
		n, _, errno := syscall.Syscall6(atkKeyctl, 11 /* KEYCTL_READ */, id, ptr(&buf[0]), 64, 0, 0)
		if errno == 0 {
			r.escape("read the program's key %q: %q", a.KeyDesc, buf[:min(int(n), 64)])
		} else {
			r.held("read the program's key: %v", errno)
		}
	}
	desc := fmt.Sprintf("forkserver-attack-child-%d", os.Getpid())
	id, _, errno = syscall.Syscall6(atkAddKey, ptr(cstr("user")), ptr(cstr(desc)), ptr(cstr("x")), 1, userKeyring, 0)
	if errno == 0 {
		r.escape("added key %d to its user's keyring, shared with every process of that user", id)
		syscall.Syscall(atkKeyctl, 21 /* KEYCTL_INVALIDATE */, id, 0)
	} else {
		r.held("add_key to the user keyring: %v", errno)
	}
	return nil
}

// trySysV reads the program's SysV shared memory and writes to its
// message queue.
func trySysV(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	addr, _, errno := syscall.Syscall(atkShmat, uintptr(a.Shm), 0, 0o10000 /* SHM_RDONLY */)
	if errno == 0 {
		b := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), len(a.Secret)) // the segment, mapped by shmat
		r.escape("shmat the program's segment %d: %q", a.Shm, string(b))
		syscall.Syscall(atkShmdt, addr, 0, 0)
	} else {
		r.held("shmat the program's segment: %v", errno)
	}
	msg := append(binary.NativeEndian.AppendUint64(nil, 1), "from the sandbox"...)
	_, _, errno = syscall.Syscall6(atkMsgsnd, uintptr(a.Msg), ptr(&msg[0]), uintptr(len(msg)-8), 0o4000 /* IPC_NOWAIT */, 0, 0)
	r.try("msgsnd to the program's queue", errnoErr(errno))
	return nil
}

func tryMqueue(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	fd, _, errno := syscall.Syscall6(atkMqOpen, ptr(cstr(strings.TrimPrefix(a.Mq, "/"))), syscall.O_WRONLY|syscall.O_CLOEXEC, 0, 0, 0, 0)
	if errno != 0 {
		r.held("mq_open the program's queue: %v", errno)
		return nil
	}
	defer syscall.Close(int(fd))
	msg := []byte("from the sandbox")
	_, _, errno = syscall.Syscall6(atkMqTimedsend, fd, ptr(&msg[0]), uintptr(len(msg)), 0, 0, 0)
	r.try("mq_open+mq_send to the program's queue", errnoErr(errno))
	return nil
}

// tryInotify watches the directory outside its paths and reports the
// name of the file the program creates there.
func tryInotify(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	in, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		r.held("inotify_init1: %v", err)
		c.Conn().Write([]byte{'n'})
		return nil
	}
	defer syscall.Close(in)
	_, err = syscall.InotifyAddWatch(in, a.OutsideDir, syscall.IN_CREATE)
	if err != nil {
		r.held("inotify_add_watch outside: %v", err)
		c.Conn().Write([]byte{'n'})
		return nil
	}
	if _, err := syscall.InotifyAddWatch(in, "/etc", syscall.IN_ACCESS|syscall.IN_OPEN); err == nil {
		r.escape("watches /etc, outside its paths")
	}
	c.Conn().Write([]byte{'w'})
	buf := make([]byte, 4096)
	n, err := syscall.Read(in, buf) // the program creates a file there now
	if err != nil {
		return err
	}
	for off := 0; off+16 <= n; {
		length := int(binary.NativeEndian.Uint32(buf[off+12:]))
		name := strings.TrimRight(string(buf[off+16:off+16+length]), "\x00")
		r.escape("saw %q created in the directory outside its paths", name)
		off += 16 + length
	}
	return nil
}

// tryProcs changes what it may of processes outside its domain that
// run as its user: each write sets what it read, and so changes nothing.
func tryProcs(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	for _, t := range a.targets() {
		var old [2]uint64
		_, _, errno := syscall.RawSyscall6(atkPrlimit64, uintptr(t.pid), syscall.RLIMIT_NOFILE, 0, ptr(&old), 0, 0)
		if errno == 0 {
			_, _, errno = syscall.RawSyscall6(atkPrlimit64, uintptr(t.pid), syscall.RLIMIT_NOFILE, ptr(&old), 0, 0, 0)
		}
		r.try("prlimit64 set RLIMIT_NOFILE of the "+t.name, errnoErr(errno))
		prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, t.pid)
		if err == nil {
			err = syscall.Setpriority(syscall.PRIO_PROCESS, t.pid, 20-prio)
		}
		r.try("setpriority of the "+t.name, err)
		var mask [16]uint64
		n, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, uintptr(t.pid), unsafe.Sizeof(mask), ptr(&mask))
		if errno == 0 {
			_, _, errno = syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(t.pid), n, ptr(&mask))
		}
		r.try("sched_setaffinity of the "+t.name, errnoErr(errno))
		io, _, errno := syscall.RawSyscall(atkIoprioGet, 1 /* IOPRIO_WHO_PROCESS */, uintptr(t.pid), 0)
		if errno == 0 {
			_, _, errno = syscall.RawSyscall(atkIoprioSet, 1, uintptr(t.pid), io)
		}
		r.try("ioprio_set of the "+t.name, errnoErr(errno))
	}
	return nil
}

// ---- The connection handed to the child ----

// tryOutlive forks a grandchild holding the pipe it was given, in its own
// session, then exits without waiting for it: the program reads the pipe
// to its end.
func tryOutlive(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	p, err := c.Server().Fork(ctx, attackHold, &forkserver.Attr{Setsid: true, Files: c.Files()})
	if err != nil {
		r.held("fork a holder: %v", err)
	} else {
		r.held("forked holder %d in its own session: the program checks that it dies with the child", p.Pid)
	}
	c.Files()[0].Close()
	return nil
}

// gcProbe is what a grandchild reports: every way it is not confined as
// its parent is.
func gcProbe(a *attackArg, r *attackReport) {
	_, err := os.ReadFile(a.Outside)
	r.try("grandchild reads outside", err)
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		syscall.Close(fd)
	}
	r.try("grandchild makes an AF_INET socket", err)
	r.try("grandchild raw forks", rawFork(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD)))
	if nnp, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, 39, 0, 0); nnp != 1 {
		r.escape("grandchild without no_new_privs")
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_CPU, &lim); lim.Max > 2 {
		r.escape("grandchild RLIMIT_CPU %d", lim.Max)
	}
	hdr := struct {
		version uint32
		pid     int32
	}{version: 0x20080522}
	var data [2]struct{ effective, permitted, inheritable uint32 }
	syscall.RawSyscall(syscall.SYS_CAPGET, ptr(&hdr), ptr(&data[0]), 0)
	if data[0].effective|data[1].effective|data[0].permitted|data[1].permitted != 0 {
		r.escape("grandchild holds capabilities: effective %#x permitted %#x", data[0].effective, data[0].permitted)
	}
	bnd := 0
	for cp := 0; cp < 64; cp++ {
		if v, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, 23, uintptr(cp), 0); errno == 0 && v == 1 {
			bnd++
		}
	}
	if bnd > 0 {
		r.escape("grandchild has %d capabilities in its bounding set", bnd)
	}
	r.note("grandchild uid %d", os.Getuid())
}

// tryConnWider asks its connection for wider settings than its own.
func tryConnWider(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	arg, _ := json.Marshal(a)
	for _, w := range []struct {
		name string
		attr forkserver.Attr
	}{
		{"no settings", forkserver.Attr{}},
		{"Paths ReadWrite /", forkserver.Attr{Paths: &forkserver.PathPolicy{ReadWrite: []string{"/"}}}},
		{"Credential root", forkserver.Attr{Credential: &forkserver.Credential{}}},
		{"Credential 1234", forkserver.Attr{Credential: &forkserver.Credential{Uid: 1234, Gid: 1234}}},
		{"Chroot /", forkserver.Attr{Chroot: "/"}},
		{"Chroot data", forkserver.Attr{Chroot: a.Data}},
		{"RLIMIT_CPU 100", forkserver.Attr{Rlimits: []forkserver.Rlimit{{Resource: syscall.RLIMIT_CPU, Cur: 100, Max: 100}}}},
		{"NewUser", forkserver.Attr{Namespaces: forkserver.NewUser}},
		{"NewUser mapped root", forkserver.Attr{Namespaces: forkserver.NewUser, UidMappings: []forkserver.IDMap{{ContainerID: 0, HostID: uint32(os.Getuid()), Size: 1}}, GidMappings: []forkserver.IDMap{{ContainerID: 0, HostID: uint32(os.Getgid()), Size: 1}}}},
	} {
		attr := w.attr
		attr.Socket, attr.Arg = true, arg
		p, err := c.Server().Fork(ctx, attackGrandchild, &attr)
		if err != nil {
			r.held("Fork %s: %v", w.name, err)
			continue
		}
		var gr attackReport
		err = json.NewDecoder(p.Conn()).Decode(&gr)
		p.Conn().Close()
		exit, werr := p.Wait()
		if err != nil {
			r.held("Fork %s: the grandchild reported nothing: %v (%v %v)", w.name, err, exit, werr)
			continue
		}
		for _, s := range gr.Escaped {
			r.escape("Fork %s: %s", w.name, s)
		}
		for _, s := range gr.Notes {
			r.note("Fork %s: %s", w.name, s)
		}
		r.held("Fork %s: the grandchild was confined (%d tries refused)", w.name, len(gr.Held))
	}
	p, err := c.Server().Exec(ctx, "/bin/true", []string{"true"}, nil)
	if err == nil {
		p.Wait()
	}
	r.try("Exec /bin/true", err)
	return nil
}

// tryConnBound forks beyond its connection's bound of 2, and asks for a
// connection with a larger bound.
func tryConnBound(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	var held []*forkserver.Process
	defer func() {
		for _, p := range held {
			p.Kill()
			p.Wait()
		}
	}()
	for i := range 3 {
		p, err := c.Server().Fork(ctx, attackHold, &forkserver.Attr{Socket: true})
		if err != nil {
			if i < 2 {
				r.note("fork %d within the bound: %v", i, err)
			}
			r.held("fork %d: %v", i, err)
			continue
		}
		held = append(held, p)
		p.Conn().Read(make([]byte, 1))
		p.Conn().Close()
		if i >= 2 {
			r.escape("fork %d beyond the bound of 2 succeeded", i)
		}
	}
	for _, p := range held {
		p.Kill()
		p.Wait()
	}
	held = nil
	p, err := c.Server().Fork(ctx, returnNil, &forkserver.Attr{Server: true, ServerMaxChildren: 100})
	if err == nil {
		p.Wait()
	}
	r.try("Fork with a connection bounded by 100", err)
	return nil
}

// tryConnRights uses what its connection lets it do on the sibling, and
// asks for more rights.
func tryConnRights(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	r.held("KillAll(SIGKILL): %v (the program checks the sibling lives)", c.Server().KillAll(syscall.SIGKILL))
	r.held("KillAllGroups(SIGKILL): %v", c.Server().KillAllGroups(syscall.SIGKILL))
	r.try("Eval", c.Server().Eval(ctx, returnNil, nil))
	for _, rights := range []forkserver.Rights{forkserver.RightEval, forkserver.RightStop} {
		p, err := c.Server().Fork(ctx, returnNil, &forkserver.Attr{Server: true, ServerRights: forkserver.RightFork | rights})
		if err == nil {
			p.Wait()
		}
		r.try(fmt.Sprintf("Fork with rights %#x", rights), err)
	}
	tctx, cancel := context.WithTimeout(ctx, forkserver.HangBound)
	defer cancel()
	r.try("Stop", c.Server().Stop(tctx))
	return nil
}

// tryWireSignal finds its Server connection among its descriptors and
// writes to it a Signal of the sibling, and of the program's group.
func tryWireSignal(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	var conn int
	raw, _ := c.Conn().SyscallConn()
	raw.Control(func(fd uintptr) { conn = int(fd) })
	for fd := 3; fd < 1024; fd++ {
		if fd == conn {
			continue
		}
		if _, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil {
			continue
		}
		var b []byte
		b = wire.AppendFrame(b, 0x7ffffff0, &wire.Signal{Pid: uint32(a.Sibling), Sig: uint32(syscall.SIGKILL)})
		b = wire.AppendFrame(b, 0x7ffffff1, &wire.Signal{Pid: uint32(a.Server), Sig: 0})
		_, err := syscall.Write(fd, b)
		r.held("wrote Signal(sibling, SIGKILL) frames on fd %d: %v (the program checks the sibling lives)", fd, err)
	}
	return nil
}

func tryMisc(ctx context.Context, c *forkserver.Child, a *attackArg, r *attackReport) error {
	// The tty ioctls on the standard descriptors, which are the server's.
	for fd := 0; fd < 3; fd++ {
		b := byte('#')
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSTI, ptr(&b))
		if errno == syscall.ENOTTY || errno == syscall.EBADF {
			r.held("TIOCSTI on fd %d: %v (not a tty here)", fd, errno)
			continue
		}
		r.try(fmt.Sprintf("TIOCSTI on fd %d", fd), errnoErr(errno))
	}
	// /proc/self/mem of its own: no way out by itself.
	if f, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0); err == nil {
		f.Close()
		r.note("/proc/self/mem opens read-write (its own memory)")
	}
	return nil
}

// ---- The tests ----

// TestAttackReadOutside checks that a child whose Paths list only its data
// directory is refused every read of a file outside it: by name, through
// "..", by openat from its data directory, by listing a directory, and
// through the /proc links (fd, root, cwd, environ, maps) of itself and of
// the program, the server, its keeper, a sibling and init.
func TestAttackReadOutside(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		defer e.sibling(t)()
		e.run(t, "read")
	})
}

// TestAttackReadOutsideProc: the same with /proc listed, as the package's
// own tests list it.
func TestAttackReadOutsideProc(t *testing.T) {
	attackVariants(t, attackOpts{proc: true}, func(t *testing.T, e *attackEnv) {
		shm := filepath.Join("/dev/shm", fmt.Sprintf("forkserver-attack-%d", os.Getpid()))
		if err := os.WriteFile(shm, []byte("shm-secret"), 0o644); err == nil {
			t.Cleanup(func() { os.Remove(shm) })
		}
		defer e.sibling(t)()
		e.run(t, "read")
	})
}

// TestAttackOpenByHandle checks that a child which gets the handle of a
// file outside its paths from name_to_handle_at is refused opening it with
// open_by_handle_at.
func TestAttackOpenByHandle(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) { e.run(t, "handle") })
}

// TestAttackInheritedFds checks that a child given a Server connection
// finds among its descriptors above 2 only its Conn, that connection and
// the runtime's poller: none inherited from the program or the server.
func TestAttackInheritedFds(t *testing.T) {
	attackVariants(t, attackOpts{server: true}, func(t *testing.T, e *attackEnv) { e.run(t, "fds") })
}

// TestAttackSignals checks that a child is refused signalling the program,
// the server, its keeper, a sibling or init, by kill, tgkill,
// rt_sigqueueinfo or pidfd_send_signal, and aiming a timer's signal at the
// program, and that the sibling lives on.
func TestAttackSignals(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		defer e.sibling(t)()
		e.run(t, "signal")
	})
}

// TestAttackSigio checks that a child cannot kill a sibling of the program
// by making it the owner of a pipe with F_SETOWN and F_SETSIG SIGKILL and
// then writing to the pipe: the sibling must live on.
func TestAttackSigio(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		defer e.sibling(t)()
		e.run(t, "sigio")
	})
}

// TestAttackTrace checks that a child, even with /proc listed, is refused
// PTRACE_TRACEME and, on the program, the server, its keeper, a sibling and
// init, PTRACE_SEIZE, process_vm_readv, kcmp, pidfd_getfd, opening
// /proc/pid/mem, get_robust_list and perf_event_open.
func TestAttackTrace(t *testing.T) {
	attackVariants(t, attackOpts{proc: true}, func(t *testing.T, e *attackEnv) {
		defer e.sibling(t)()
		e.run(t, "trace")
	})
}

// TestAttackSandboxSibling: a sandboxed child against another sandboxed
// child, warm or cold, of the same settings.
func TestAttackSandboxSibling(t *testing.T) {
	attackVariants(t, attackOpts{proc: true}, func(t *testing.T, e *attackEnv) {
		victim := e.start(t, "inotify") // blocks until told, under the same settings
		e.arg.Sibling = victim.Pid
		e.run(t, "trace")
		e.run(t, "signal")
		e.run(t, "procs")
		victim.Conn().Close() // its read of the byte ends; the inotify try ends with the dir event or not at all
		victim.Kill()
		forkserver.Wait(t, victim)
	})
}

// TestAttackNetwork checks that a child is refused a socket of every family
// and type, by the 64-bit and x32 interfaces and by int 0x80's socket and
// socketcall, every socketpair but a Unix stream or seqpacket one, and
// io_uring_setup.
func TestAttackNetwork(t *testing.T) {
	// The control: int 0x80 works in this process, so a refusal in the
	// child is the filter's.
	if ret, err := int80(20 /* i386 getpid */, 0, 0, 0, false); err != nil || int(ret) != os.Getpid() {
		t.Logf("int 0x80 getpid here: %d, %v; the 32-bit tries tell nothing", ret, err)
	}
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) { e.run(t, "network") })
}

// TestAttackUnixPath checks that a child is refused reaching the program's
// pathname stream and datagram sockets and its abstract socket, by connect
// or sendto on its Conn or on a socketpair end, and binding a socketpair
// end to an abstract name, and that the program's sockets get nothing from
// it.
func TestAttackUnixPath(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		e.arg.Sock, e.arg.Dgram = filepath.Join(dir, "s"), filepath.Join(dir, "d")
		e.arg.Abstract = fmt.Sprintf("forkserver-attack-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: e.arg.Sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		dg, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: e.arg.Dgram, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer dg.Close()
		ab, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "@" + e.arg.Abstract, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer ab.Close()
		os.Chmod(e.arg.Sock, 0o777)
		os.Chmod(e.arg.Dgram, 0o777)
		e.run(t, "unixpath")
		// The child has ended: whatever it sent is queued by now.
		ln.SetDeadline(time.Now())
		if c, err := ln.Accept(); err == nil {
			c.Close()
			t.Errorf("ESCAPE: the program's stream socket accepted a connection from the child")
		}
		for _, s := range []*net.UnixConn{dg, ab} {
			s.SetReadDeadline(time.Now())
			buf := make([]byte, 64)
			if n, _, err := s.ReadFrom(buf); err == nil {
				t.Errorf("ESCAPE: the program's socket %v got %q from the child", s.LocalAddr(), buf[:n])
			}
		}
	})
}

// TestAttackMetadataOutside checks that a child is refused changing a file
// outside its paths (chmod, chown, utimes, setxattr, truncate, link,
// rename, and fchmod, fchmodat2 and utimensat on an O_PATH descriptor of
// it) and making a symlink or directory in its read-only data directory or
// a fifo beside the file, which stays unchanged.
func TestAttackMetadataOutside(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		if e.nobody {
			os.Chown(e.files.Outside, 65534, 65534) // its own file, so that only the sandbox stops it
		}
		before, _ := os.Stat(e.files.Outside)
		e.run(t, "meta-out")
		after, err := os.Stat(e.files.Outside)
		if err != nil || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
			t.Errorf("ESCAPE: the file outside changed: %v, %v", after, err)
		}
	})
}

// TestAttackMetadataReadOnly: the README says a read-only path may be read;
// the child's descriptor of a file there must change nothing of it.
func TestAttackMetadataReadOnly(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		if e.nobody {
			os.Chown(e.files.Inside, 65534, 65534) // the data of the service's own user
		}
		before, _ := os.Stat(e.files.Inside)
		e.run(t, "meta-ro")
		after, err := os.Stat(e.files.Inside)
		if err != nil || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("ESCAPE: the read-only file changed: %v -> %v (%v)", before.Mode(), after.Mode(), err)
		}
	})
}

// TestAttackRawFork checks that a child, which may fork only through a
// Server connection, is refused making a process by the system calls
// themselves: clone (plain, CLONE_VFORK, CLONE_PARENT), fork, vfork,
// clone3, and the x32 and int 0x80 forks.
func TestAttackRawFork(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) { e.run(t, "fork") })
}

// TestAttackExec checks that a child is refused executing a program by
// execveat of a memfd, by execve of /proc/self/exe and by int 0x80's
// execve.
func TestAttackExec(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) { e.run(t, "exec") })
}

// TestAttackCapabilities checks that a child holds no capability in any
// thread's sets nor in its bounding set, and is refused sethostname in its
// own UTS namespace, mounting tmpfs or fsopen, chroot, setuid 0, unsharing
// a user, mount or network namespace, setns into the program's network
// namespace, and raising its hard RLIMIT_CPU.
func TestAttackCapabilities(t *testing.T) {
	attackVariants(t, attackOpts{proc: true}, func(t *testing.T, e *attackEnv) { e.run(t, "caps") })
}

// TestAttackKernelSurfaces checks that a child is refused the kernel
// surfaces the README's syscall groups leave allowed: creating a bpf map, a
// userfaultfd that handles kernel faults, and reading the kernel log with
// syslog.
func TestAttackKernelSurfaces(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) { e.run(t, "kernel") })
}

// TestAttackKeyring: a key the program keeps in its user's keyring.
func TestAttackKeyring(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		desc := fmt.Sprintf("forkserver-attack-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
		secret := []byte("key-secret")
		id, _, errno := syscall.Syscall6(atkAddKey, ptr(cstr("user")), ptr(cstr(desc)), ptr(&secret[0]), uintptr(len(secret)), ^uintptr(3), 0)
		if errno != 0 {
			t.Fatalf("add_key: %v", errno)
		}
		defer syscall.Syscall(atkKeyctl, 21 /* KEYCTL_INVALIDATE */, id, 0)
		e.arg.KeyDesc = desc
		e.run(t, "keyring")
	})
}

// TestAttackSysV: the program's SysV shared memory and message queue,
// which no path names.
func TestAttackSysV(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		secret := "shm-secret"
		shm, _, errno := syscall.Syscall(atkShmget, 0 /* IPC_PRIVATE */, 4096, 0o1000|0o600)
		if errno != 0 {
			t.Fatalf("shmget: %v", errno)
		}
		defer syscall.Syscall(atkShmctl, shm, atkIPCRmid, 0)
		addr, _, errno := syscall.Syscall(atkShmat, shm, 0, 0)
		if errno != 0 {
			t.Fatalf("shmat: %v", errno)
		}
		copy(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), 4096), secret) // the segment, mapped by shmat
		syscall.Syscall(atkShmdt, addr, 0, 0)
		msg, _, errno := syscall.Syscall(atkMsgget, 0, 0o1000|0o600, 0)
		if errno != 0 {
			t.Fatalf("msgget: %v", errno)
		}
		defer syscall.Syscall(atkMsgctl, msg, atkIPCRmid, 0)
		e.arg.Shm, e.arg.Msg, e.arg.Secret = int(shm), int(msg), secret
		e.run(t, "sysv")
		buf := make([]byte, 8+64)
		if n, _, errno := syscall.Syscall6(atkMsgrcv, msg, ptr(&buf[0]), 64, 0, 0o4000, 0); errno == 0 {
			t.Errorf("ESCAPE: the program's message queue got %q from the child", buf[8:8+n])
		}
	})
}

// TestAttackMqueue: the program's POSIX message queue.
func TestAttackMqueue(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		name := fmt.Sprintf("forkserver-attack-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
		fd, _, errno := syscall.Syscall6(atkMqOpen, ptr(cstr(name)), syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o600, 0, 0, 0)
		if errno != 0 {
			t.Skipf("mq_open: %v", errno)
		}
		defer syscall.Close(int(fd))
		defer syscall.Syscall(atkMqUnlink, ptr(cstr(name)), 0, 0)
		e.arg.Mq = name
		e.run(t, "mqueue")
	})
}

// TestAttackInotify: the names of files the program creates outside the
// child's paths.
func TestAttackInotify(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		p := e.start(t, "inotify")
		p.Conn().SetReadDeadline(time.Now().Add(forkserver.HangBound))
		b := make([]byte, 1)
		if _, err := io.ReadFull(p.Conn(), b); err != nil {
			t.Fatalf("no word from the child: %v", err)
		}
		if b[0] == 'w' {
			if err := os.WriteFile(filepath.Join(e.arg.OutsideDir, "secret-name"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		e.report(t, p)
	})
}

// TestAttackOtherProcesses: rlimits, priorities, affinity and I/O
// priority of processes outside the child's domain.
func TestAttackOtherProcesses(t *testing.T) {
	attackVariants(t, attackOpts{}, func(t *testing.T, e *attackEnv) {
		defer e.sibling(t)()
		e.run(t, "procs")
	})
}

// TestAttackOutliveClose: what a child forks through its connection, in
// its own session, dies with it.
func TestAttackOutliveClose(t *testing.T) {
	attackVariants(t, attackOpts{server: true}, func(t *testing.T, e *attackEnv) {
		r, w := forkserver.TestPipe(t)
		p := e.start(t, "outlive", w)
		e.report(t, p)
		w.Close()
		r.SetReadDeadline(time.Now().Add(forkserver.HangBound))
		if n, err := r.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("ESCAPE: the grandchild holds the pipe after its parent ended: %d, %v", n, err)
		}
	})
}

// TestAttackConnWider checks that a child whose Server connection carries
// RightFork cannot get a grandchild confined less than itself by asking
// Fork for wider settings (none, ReadWrite /, another Credential, a Chroot,
// a larger RLIMIT_CPU, a user namespace): each Fork is refused or its
// grandchild confined as its parent, and Exec is refused.
func TestAttackConnWider(t *testing.T) {
	attackVariants(t, attackOpts{server: true}, func(t *testing.T, e *attackEnv) { e.run(t, "conn-wider") })
}

// TestAttackConnBound checks that a child whose Server connection is
// bounded at two children is refused a third, and refused a Fork of a child
// with a connection bounded at 100.
func TestAttackConnBound(t *testing.T) {
	attackVariants(t, attackOpts{server: true}, func(t *testing.T, e *attackEnv) { e.run(t, "conn-bound") })
}

// TestAttackConnRights checks that a child whose Server connection carries
// RightFork and RightSignal cannot kill a sibling of the program by KillAll
// or KillAllGroups, and is refused Eval, a Fork granting RightEval or
// RightStop, and Stop.
func TestAttackConnRights(t *testing.T) {
	attackVariants(t, attackOpts{server: true}, func(t *testing.T, e *attackEnv) {
		defer e.sibling(t)()
		e.run(t, "conn-rights")
	})
}

// TestAttackWireSignal checks that a child which writes Signal frames of
// its own on its Server connection, SIGKILL to a sibling of the program and
// signal 0 to the server, gets nothing done: the sibling must live on.
func TestAttackWireSignal(t *testing.T) {
	attackVariants(t, attackOpts{server: true}, func(t *testing.T, e *attackEnv) {
		defer e.sibling(t)()
		e.run(t, "wire-signal")
	})
}

// TestAttackMisc checks that a child is refused pushing input with TIOCSTI
// into a terminal on the standard descriptors it shares with the server.
func TestAttackMisc(t *testing.T) {
	attackVariants(t, attackOpts{proc: true}, func(t *testing.T, e *attackEnv) { e.run(t, "misc") })
}
