package forkserver

// The filesystem policy of Attr.Paths: Landlock rulesets the server
// builds and passes to the child as descriptors; the child enforces them
// on its first thread and executes the binary again (see enterLandlock).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/forkserver/forkserver/internal/wire"
)

// Landlock's system calls, numbered alike on every architecture, and
// their flags.
const (
	sysLandlockCreateRuleset = 444
	sysLandlockAddRule       = 445
	sysLandlockRestrictSelf  = 446

	landlockCreateRulesetVersion = 1
	landlockRulePathBeneath      = 1

	// oPath is O_PATH, which package syscall lacks, as the kernel's
	// generic headers number it.
	oPath = 0x200000

	// minLandlockABI is the first that controls truncation, without
	// which a read-only file could be emptied.
	minLandlockABI = 3
)

// Landlock's filesystem access rights.
const (
	llExecute = 1 << iota
	llWriteFile
	llReadFile
	llReadDir
	llRemoveDir
	llRemoveFile
	llMakeChar
	llMakeDir
	llMakeReg
	llMakeSock
	llMakeFifo
	llMakeBlock
	llMakeSym
	llRefer    // ABI 2
	llTruncate // ABI 3
	llIoctlDev // ABI 5

	llScopeAbstractUnixSocket = 1 // ABI 6
	llScopeSignal             = 2

	llRead  = llExecute | llReadFile | llReadDir
	llFiles = llExecute | llWriteFile | llReadFile | llTruncate | llIoctlDev // the rights a rule on a file may hold
)

// landlockABI returns the Landlock ABI version of the running kernel, or
// the error that says it has none.
var landlockABI = sync.OnceValues(func() (int, error) {
	v, _, errno := syscall.RawSyscall(sysLandlockCreateRuleset, 0, 0, landlockCreateRulesetVersion)
	if errno != 0 {
		return 0, errno
	}
	return int(v), nil
})

// landlockSupported reports why the kernel cannot enforce layers, or nil.
func landlockSupported() error {
	abi, err := landlockABI()
	switch {
	case err != nil:
		return errorf("Paths: the kernel has no Landlock (%v): %w", err, errors.ErrUnsupported)
	case abi < minLandlockABI:
		return errorf("Paths: the kernel's Landlock ABI %d is older than %d (Linux 6.2): %w", abi, minLandlockABI, errors.ErrUnsupported)
	}
	return nil
}

// handledRights returns every filesystem right Landlock ABI abi knows.
func handledRights(abi int) uint64 {
	rights := uint64(llRefer - 1)
	for _, r := range []struct {
		abi   int
		right uint64
	}{{2, llRefer}, {3, llTruncate}, {5, llIoctlDev}} {
		if abi >= r.abi {
			rights |= r.right
		}
	}
	return rights
}

// startFiles lists the files a child must read and execute to start,
// which are this server's: its binary, the dynamic loader and the shared
// libraries it maps executable, and the loader's cache.
var startFiles = sync.OnceValue(func() []string {
	files := []string{"/proc/self/exe"}
	if f, err := os.Open("/proc/self/maps"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// address perms offset dev inode path
			fields := strings.SplitN(sc.Text(), " ", 6)
			if len(fields) < 6 || !strings.Contains(fields[1], "x") {
				continue
			}
			path := strings.TrimLeft(fields[5], " ")
			if strings.HasPrefix(path, "/") && !strings.HasSuffix(path, " (deleted)") {
				files = append(files, path)
			}
		}
	}
	if _, err := os.Stat("/etc/ld.so.cache"); err == nil {
		files = append(files, "/etc/ld.so.cache")
	}
	return files
})

// pathRulesets creates a Landlock ruleset for each of layers, which also
// lets the child start. The caller closes them.
func pathRulesets(layers []wire.PathLayer) ([]int, error) {
	abi, _ := landlockABI()
	handled := handledRights(abi)
	var rulesets []int
	// struct landlock_ruleset_attr: handled_access_fs, handled_access_net
	// (ABI 4), scoped (ABI 6). A kernel takes the fields it knows.
	attr := [3]uint64{handled}
	size := unsafe.Sizeof(attr[0])
	if abi >= 6 {
		// Nor may the child reach out of its policy through an abstract
		// Unix socket, or signal a process outside it.
		attr[2] = llScopeAbstractUnixSocket | llScopeSignal
		size = unsafe.Sizeof(attr)
	}
	for _, l := range layers {
		fd, _, errno := syscall.Syscall(sysLandlockCreateRuleset, uintptr(unsafe.Pointer(&attr)), size, 0)
		if errno != 0 {
			closeFds(rulesets)
			return nil, os.NewSyscallError("landlock_create_ruleset", errno)
		}
		rulesets = append(rulesets, int(fd))
		err := addRules(int(fd), startFiles(), handled&(llExecute|llReadFile), true)
		if err == nil {
			err = addRules(int(fd), l.ReadOnly, handled&llRead, false)
		}
		if err == nil {
			err = addRules(int(fd), l.ReadWrite, handled, false)
		}
		if err != nil {
			closeFds(rulesets)
			return nil, err
		}
	}
	return rulesets, nil
}

// addRules lets ruleset grant access beneath each of paths, only the
// rights that apply to files for a path that is not a directory. A path
// that cannot be opened is an error, unless optional.
func addRules(ruleset int, paths []string, access uint64, optional bool) error {
	for _, path := range paths {
		fd, err := syscall.Open(path, oPath|syscall.O_CLOEXEC, 0)
		if err != nil {
			if optional {
				continue
			}
			return errorf("Paths: %w", &os.PathError{Op: "open", Path: path, Err: err})
		}
		var st syscall.Stat_t
		err = syscall.Fstat(fd, &st)
		if err == nil {
			rights := access
			if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
				rights &= llFiles
			}
			// struct landlock_path_beneath_attr, packed: allowed_access
			// u64, parent_fd s32.
			var rule [12]byte
			binary.NativeEndian.PutUint64(rule[:], rights)
			binary.NativeEndian.PutUint32(rule[8:], uint32(fd))
			_, _, errno := syscall.Syscall6(sysLandlockAddRule, uintptr(ruleset), landlockRulePathBeneath, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
			if errno != 0 {
				err = os.NewSyscallError("landlock_add_rule "+path, errno)
			}
		}
		syscall.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// layerRulesets sets l.rulesets to the rulesets its child enters: those
// of the connection it came through, as that connection's child entered
// them, then one for each layer l's own settings ask for. The paths of a
// connection's layers are resolved once, as its child is created: what
// that child does to its files later cannot widen what its children may
// reach.
func (l *launch) layerRulesets() error {
	if n := len(l.from.rulesets) + len(l.st.PathLayers); n > wire.MaxLayers {
		return errorf("Paths: %d nested policies exceed the kernel's %d", n, wire.MaxLayers)
	}
	for _, fd := range l.from.rulesets {
		dup, err := dupCloexec(fd)
		if err != nil {
			return err
		}
		l.rulesets = append(l.rulesets, dup)
	}
	if len(l.st.PathLayers) == 0 {
		return nil
	}
	own, err := pathRulesets(l.st.PathLayers)
	l.rulesets = append(l.rulesets, own...)
	return err
}

// enterLandlock, in a child given rulesets (see layerRulesets), enforces
// them and executes the binary again as a child, which then runs confined
// from its first instruction. Landlock confines only the thread that asks,
// and a Go process has many; an execution keeps that thread's confinement
// for the whole new process. The server cannot confine a thread of its own
// to create the child from, for that thread would have to end, and a
// thread's end sends the parent-death signal to the children it created.
func enterLandlock() error {
	v, ok := os.LookupEnv(landlockEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(landlockEnv)
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > wire.MaxLayers {
		return errorf("%s=%q: want 1 to %d rulesets", landlockEnv, v, wire.MaxLayers)
	}
	runtime.LockOSThread() // for good: the execution ends the process's other threads
	for fd := rulesetFd; fd < rulesetFd+n; fd++ {
		if _, _, errno := syscall.RawSyscall(sysLandlockRestrictSelf, uintptr(fd), 0, 0); errno != 0 {
			return os.NewSyscallError("landlock_restrict_self", errno)
		}
		syscall.Close(fd)
	}
	err = syscall.Exec("/proc/self/exe", os.Args, append(os.Environ(), roleEnv+"="+roleChild))
	return os.NewSyscallError("exec /proc/self/exe", err)
}
