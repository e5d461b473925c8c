package forkserver

// The filesystem policy of Attr.Paths: Landlock rulesets the server
// builds and passes to the child as descriptors; the child enforces them
// on its first thread and executes the binary again (see enterLandlock).

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// programFiles lists the files the external program at path, inside
// root if that is not empty, must read and execute to start: the program,
// the interpreter of a script, the dynamic loader an ELF binary names,
// the shared libraries it and they need, found as the loader finds them
// (in their run paths, then the directories of /etc/ld.so.conf.d and the
// system's library directories), and the loader's cache. What cannot be
// found or parsed is left out: the program's start then fails as it
// would with no access to it, and the policy must list it.
//
// The list is kept for the next Exec of the same file, as long as the
// program's inode, size and modification time stay the same: finding it
// takes longer than creating the process. It is a list of names, which
// NewRuleset resolves afresh: a stale one can only keep a program from
// starting.
func programFiles(root, path string) []string {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(root, path), &st); err != nil {
		return findProgramFiles(root, path)
	}
	key := programKey{root, path, uint64(st.Dev), st.Ino, st.Size, st.Mtim}
	programCache.Lock()
	defer programCache.Unlock()
	files, ok := programCache.m[key]
	if !ok {
		if len(programCache.m) >= 64 {
			clear(programCache.m)
		}
		files = findProgramFiles(root, path)
		programCache.m[key] = files
	}
	return files
}

// programKey is what programFiles keeps a list by.
type programKey struct {
	root, path string
	dev, ino   uint64
	size       int64
	mtime      syscall.Timespec
}

var programCache = struct {
	sync.Mutex
	m map[programKey][]string
}{m: map[programKey][]string{}}

// findProgramFiles finds what programFiles lists.
func findProgramFiles(root, path string) []string {
	files := []string{path}
	if f, err := os.Open(filepath.Join(root, path)); err == nil {
		b := make([]byte, 256)
		n, _ := f.Read(b)
		f.Close()
		if line, _, _ := bytes.Cut(b[:n], []byte("\n")); bytes.HasPrefix(line, []byte("#!")) {
			if interp := bytes.Fields(line[2:]); len(interp) > 0 {
				path = string(interp[0])
				files = append(files, path)
			}
		}
	}
	seen := map[string]bool{}
	var need func(file string)
	need = func(file string) {
		f, err := elf.Open(filepath.Join(root, file))
		if err != nil {
			return
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				if b, err := io.ReadAll(p.Open()); err == nil && !seen[string(bytes.TrimRight(b, "\x00"))] {
					interp := string(bytes.TrimRight(b, "\x00"))
					seen[interp] = true
					files = append(files, interp)
				}
			}
		}
		libs, _ := f.ImportedLibraries()
		var dirs []string
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			paths, _ := f.DynString(tag)
			for _, p := range paths {
				for _, d := range filepath.SplitList(p) {
					dirs = append(dirs, strings.ReplaceAll(d, "$ORIGIN", filepath.Dir(file)))
				}
			}
		}
		for _, lib := range libs {
			for _, dir := range append(dirs, libraryDirs()...) {
				if lib := filepath.Join(dir, lib); !seen[lib] && filepath.IsAbs(lib) {
					if _, err := os.Stat(filepath.Join(root, lib)); err == nil {
						seen[lib] = true
						files = append(files, lib)
						need(lib)
						break
					}
				}
			}
		}
	}
	need(path)
	return append(files, "/etc/ld.so.cache")
}

// libraryDirs lists the directories the dynamic loader searches for a
// library: those its configuration names, then the system's.
var libraryDirs = sync.OnceValue(func() []string {
	var dirs []string
	confs, _ := filepath.Glob("/etc/ld.so.conf.d/*.conf")
	for _, conf := range confs {
		b, err := os.ReadFile(conf)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "/") {
				dirs = append(dirs, line)
			}
		}
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
})

// layerRulesets sets l.rulesets to the rulesets its child enters: those
// of the connection it came through, as that connection's child entered
// them, then one for each layer l's own settings ask for, which lets the
// child read and execute start too. The paths of a connection's layers
// are resolved once, as its child is created: what that child does to its
// files later cannot widen what its children may reach.
func (l *launch) layerRulesets(start []string) error {
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
	own, err := startRulesets(l.st.PathLayers, start)
	l.rulesets = append(l.rulesets, own...)
	return err
}

// pathRulesets creates a Landlock ruleset for each of layers, which also
// lets the child start. The caller closes them.
func pathRulesets(layers []wire.PathLayer) ([]int, error) { return startRulesets(layers, startFiles()) }

// startRulesets creates a Landlock ruleset for each of layers, which also
// lets the process read and execute start. The caller closes them.
func startRulesets(layers []wire.PathLayer, start []string) ([]int, error) {
	var rulesets []int
	for _, layer := range layers {
		fd, err := sandbox.NewRuleset(layer.ReadOnly, layer.ReadWrite, start)
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
