package forkserver

// The filesystem policy of Attr.Paths: Landlock rulesets the server
// builds and enforces on the thread that creates the child, which the
// child inherits, every thread of it, from its first instruction.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unsafe"
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
func landlockSupported(layers []pathLayer) error {
	if len(layers) > maxLayers {
		return errorf("Paths: %d nested policies exceed the kernel's %d", len(layers), maxLayers)
	}
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
func pathRulesets(layers []pathLayer) ([]int, error) {
	if err := landlockSupported(layers); err != nil {
		return nil, err
	}
	abi, _ := landlockABI()
	handled := handledRights(abi)
	var rulesets []int
	for _, l := range layers {
		attr := handled // struct landlock_ruleset_attr's first field, all that older kernels know
		fd, _, errno := syscall.Syscall(sysLandlockCreateRuleset, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
		if errno != 0 {
			closeFds(rulesets)
			return nil, os.NewSyscallError("landlock_create_ruleset", errno)
		}
		rulesets = append(rulesets, int(fd))
		err := addRules(int(fd), startFiles(), handled&(llExecute|llReadFile), true)
		if err == nil {
			err = addRules(int(fd), l.readOnly, handled&llRead, false)
		}
		if err == nil {
			err = addRules(int(fd), l.readWrite, handled, false)
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

// onLandlockThread runs fn on a new thread that has no_new_privs and the
// path layers in force, so that the child fn creates inherits them. The
// thread ends with fn: it cannot shed them.
func onLandlockThread(layers []pathLayer, fn func()) error {
	rulesets, err := pathRulesets(layers)
	if err != nil {
		return err
	}
	defer closeFds(rulesets)
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); errno != 0 {
			done <- os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
			return
		}
		for _, fd := range rulesets {
			if _, _, errno := syscall.RawSyscall(sysLandlockRestrictSelf, uintptr(fd), 0, 0); errno != 0 {
				done <- os.NewSyscallError("landlock_restrict_self", errno)
				return
			}
		}
		fn()
		done <- nil
	}()
	return <-done
}
