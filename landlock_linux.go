package forkserver

// The filesystem policy of Attr.Paths: Landlock rulesets the server
// builds and passes to the child as descriptors; the child enforces them
// on its first thread and executes the binary again (see enterLandlock).

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/forkserver/forkserver/internal/sandbox"
	"github.com/forkserver/forkserver/internal/wire"
)

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

// layerRulesets sets l.rulesets to the rulesets its child enters: those
// of the connection it came through, as that connection's child entered
// them, then one for each layer l's own settings ask for. The paths of a
// connection's layers are resolved once, as its child is created: what
// that child does to its files later cannot widen what its children may
// reach.
func (l *launch) layerRulesets() error {
	if n := len(l.from.rulesets) + len(l.st.PathLayers); n > wire.MaxLayers {
		return fmt.Errorf("Paths: %d nested policies exceed the kernel's %d", n, wire.MaxLayers)
	}
	for _, fd := range l.from.rulesets {
		dup, err := dupCloexec(fd)
		if err != nil {
			return err
		}
		l.rulesets = append(l.rulesets, dup)
	}
	own, err := pathRulesets(l.st.PathLayers)
	l.rulesets = append(l.rulesets, own...)
	return err
}

// pathRulesets creates a Landlock ruleset for each of layers, which also
// lets the child start. The caller closes them.
func pathRulesets(layers []wire.PathLayer) ([]int, error) {
	var rulesets []int
	for _, layer := range layers {
		fd, err := sandbox.NewRuleset(layer.ReadOnly, layer.ReadWrite, startFiles())
		if err != nil {
			closeFds(rulesets)
			return nil, fmt.Errorf("Paths: %w", err)
		}
		rulesets = append(rulesets, fd)
	}
	return rulesets, nil
}

// enterLandlock, in a child given rulesets (see layerRulesets) from
// descriptor first on, enforces them and executes the binary again in
// role, as a child or a warm child of a declared sandbox, which then runs confined
// from its first instruction. Landlock confines only the thread that asks,
// and a Go process has many; an execution keeps that thread's confinement
// for the whole new process. The server cannot confine a thread of its own
// to create the child from, for that thread would have to end, and a
// thread's end sends the parent-death signal to the children it created.
//
// The execution tells the new image that it runs confined (landlocked),
// so that its filter also denies what Landlock does not cover: see
// enterSandbox.
func enterLandlock(first int, role string) error {
	v, ok := os.LookupEnv(landlockEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(landlockEnv)
	if v == landlockEntered {
		landlocked = true
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > wire.MaxLayers {
		return fmt.Errorf("%s=%q: want 1 to %d rulesets", landlockEnv, v, wire.MaxLayers)
	}
	runtime.LockOSThread() // for good: the execution ends the process's other threads
	for fd := first; fd < first+n; fd++ {
		if err := sandbox.RestrictSelf(fd); err != nil {
			return err
		}
		syscall.Close(fd)
	}
	err = syscall.Exec("/proc/self/exe", os.Args, append(os.Environ(), roleEnv+"="+role, landlockEnv+"="+landlockEntered))
	return os.NewSyscallError("exec /proc/self/exe", err)
}

// landlockEntered is landlockEnv's value in a child that enterLandlock
// executed confined.
const landlockEntered = "entered"

// landlocked reports whether this child runs in a Landlock domain.
var landlocked bool
