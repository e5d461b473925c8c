package sandbox

// Landlock rulesets: the filesystem policy of a path layer.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

const (
	landlockCreateRulesetVersion = 1 // LANDLOCK_CREATE_RULESET_VERSION
	landlockRulePathBeneath      = 1 // LANDLOCK_RULE_PATH_BENEATH

	// MinLandlockABI is the first Landlock ABI that controls truncation,
	// without which a read-only file could be emptied.
	MinLandlockABI = 3
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
	return landlockCreateRuleset(nil, 0, landlockCreateRulesetVersion)
})

// LandlockSupported reports why the kernel cannot enforce a ruleset made
// by NewRuleset, or nil. Its error matches errors.ErrUnsupported.
func LandlockSupported() error {
	abi, err := landlockABI()
	switch {
	case err != nil:
		return fmt.Errorf("the kernel has no Landlock (%v): %w", errors.Unwrap(err), errors.ErrUnsupported)
	case abi < MinLandlockABI:
		return fmt.Errorf("the kernel's Landlock ABI %d is older than %d (Linux 6.2): %w", abi, MinLandlockABI, errors.ErrUnsupported)
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

// NewRuleset returns a new Landlock ruleset, a descriptor the caller
// closes, that handles every right the kernel knows and grants reading,
// listing and executing beneath each of readOnly, every right beneath each
// of readWrite, and reading and executing each of start that exists. A
// path that is not a directory is granted only the rights that apply to
// files; one of readOnly or readWrite that cannot be opened is an
// *os.PathError. Where the kernel has Landlock ABI 6, the ruleset also
// keeps its domain from connecting to abstract Unix sockets and
// signalling processes outside it. Call LandlockSupported first.
func NewRuleset(readOnly, readWrite, start []string) (int, error) {
	abi, _ := landlockABI()
	handled := handledRights(abi)
	// struct landlock_ruleset_attr: handled_access_fs, handled_access_net
	// (ABI 4), scoped (ABI 6). A kernel takes the fields it knows.
	attr := [3]uint64{handled}
	size := unsafe.Sizeof(attr[0])
	if abi >= 6 {
		attr[2] = llScopeAbstractUnixSocket | llScopeSignal
		size = unsafe.Sizeof(attr)
	}
	fd, err := landlockCreateRuleset(unsafe.Pointer(&attr), size, 0)
	if err != nil {
		return -1, err
	}
	err = addRules(fd, start, handled&(llExecute|llReadFile), true)
	if err == nil {
		err = addRules(fd, readOnly, handled&llRead, false)
	}
	if err == nil {
		err = addRules(fd, readWrite, handled, false)
	}
	if err != nil {
		closeFd(fd)
		return -1, err
	}
	return fd, nil
}

// addRules lets ruleset grant access beneath each of paths, only the
// rights that apply to files for a path that is not a directory. A path
// that cannot be opened is an error, unless optional.
func addRules(ruleset int, paths []string, access uint64, optional bool) error {
	for _, path := range paths {
		fd, err := openPath(path)
		if err != nil {
			if optional {
				continue
			}
			return err
		}
		dir, err := isDir(fd)
		if err == nil {
			rights := access
			if !dir {
				rights &= llFiles
			}
			// struct landlock_path_beneath_attr, packed: allowed_access
			// u64, parent_fd s32.
			var rule [12]byte
			binary.NativeEndian.PutUint64(rule[:], rights)
			binary.NativeEndian.PutUint32(rule[8:], uint32(fd))
			if err = landlockAddRule(ruleset, landlockRulePathBeneath, unsafe.Pointer(&rule)); err != nil {
				err = fmt.Errorf("%s: %w", path, err)
			}
		}
		closeFd(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// RestrictSelf enforces ruleset on the calling thread, which the caller
// locks to its goroutine for good, and on what that thread executes.
// The thread must have no_new_privs set, or CAP_SYS_ADMIN.
func RestrictSelf(ruleset int) error { return landlockRestrictSelf(ruleset) }
