package sandbox

// Every raw system call of the sandbox, one wrapper each.

import (
	"os"
	"syscall"
	"unsafe"

	"github.com/forkserver/forkserver/internal/sysnum"
)

// prctl(2) options and the flag of open(2) that package syscall lacks.
const (
	prSetNoNewPrivs = 38 // PR_SET_NO_NEW_PRIVS

	// oPath is O_PATH, as the kernel's generic headers number it, which
	// amd64 and arm64 share.
	oPath = 0x200000
)

// landlockCreateRuleset is landlock_create_ruleset(2).
func landlockCreateRuleset(attr unsafe.Pointer, size uintptr, flags uint32) (int, error) {
	fd, _, errno := syscall.Syscall(sysnum.LandlockCreateRuleset, uintptr(attr), size, uintptr(flags))
	if errno != 0 {
		return -1, os.NewSyscallError("landlock_create_ruleset", errno)
	}
	return int(fd), nil
}

// landlockAddRule is landlock_add_rule(2).
func landlockAddRule(ruleset int, ruleType uint32, attr unsafe.Pointer) error {
	_, _, errno := syscall.Syscall6(sysnum.LandlockAddRule, uintptr(ruleset), uintptr(ruleType), uintptr(attr), 0, 0, 0)
	if errno != 0 {
		return os.NewSyscallError("landlock_add_rule", errno)
	}
	return nil
}

// landlockRestrictSelf is landlock_restrict_self(2), which confines the
// calling thread only.
func landlockRestrictSelf(ruleset int) error {
	if _, _, errno := syscall.RawSyscall(sysnum.LandlockRestrictSelf, uintptr(ruleset), 0, 0); errno != 0 {
		return os.NewSyscallError("landlock_restrict_self", errno)
	}
	return nil
}

// openPath opens path with O_PATH, which needs no access to the file.
func openPath(path string) (int, error) {
	fd, err := syscall.Open(path, oPath|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// isDir reports whether fd is a directory.
func isDir(fd int) (bool, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return false, os.NewSyscallError("fstat", err)
	}
	return st.Mode&syscall.S_IFMT == syscall.S_IFDIR, nil
}

// closeFd closes fd.
func closeFd(fd int) { syscall.Close(fd) }

// seccomp is seccomp(2), numbered as the native table says.
func seccomp(op, flags uintptr, args unsafe.Pointer) (uintptr, syscall.Errno) {
	r, _, errno := syscall.RawSyscall(uintptr(native.seccomp), op, flags, uintptr(args))
	return r, errno
}

// setNoNewPrivs sets the calling thread's no_new_privs.
func setNoNewPrivs() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
	}
	return nil
}

// capability(7)'s calls and prctl(2) options, which package syscall lacks.
const (
	linuxCapabilityVersion3 = 0x20080522 // _LINUX_CAPABILITY_VERSION_3
	prCapbsetDrop           = 24         // PR_CAPBSET_DROP
	prCapAmbient            = 47         // PR_CAP_AMBIENT
	prCapAmbientClearAll    = 4          // PR_CAP_AMBIENT_CLEAR_ALL
)

// capHeader and capData are struct __user_cap_header_struct and
// __user_cap_data_struct; version 3 takes two of the latter.
type capHeader struct {
	version uint32
	pid     int32
}

type capData struct{ effective, permitted, inheritable uint32 }

// capget is capget(2) for the calling thread.
func capget() ([2]capData, error) {
	hdr := capHeader{version: linuxCapabilityVersion3}
	var data [2]capData
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return data, os.NewSyscallError("capget", errno)
	}
	return data, nil
}

// capset is capset(2) for the calling thread.
func capset(data [2]capData) error {
	hdr := capHeader{version: linuxCapabilityVersion3}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return os.NewSyscallError("capset", errno)
	}
	return nil
}

// capbsetDrop drops c from the calling thread's bounding set.
func capbsetDrop(c int) error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prCapbsetDrop, uintptr(c), 0); errno != 0 {
		return os.NewSyscallError("prctl(PR_CAPBSET_DROP)", errno)
	}
	return nil
}

// capAmbientClearAll empties the calling thread's ambient set.
func capAmbientClearAll() error {
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prCapAmbient, prCapAmbientClearAll, 0, 0, 0, 0); errno != 0 {
		return os.NewSyscallError("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno)
	}
	return nil
}
