// Command sandbox parses untrusted input in a child that can do little
// else, without root: it may read one directory and nothing else on the
// file system (Landlock), it may not make network sockets, execute
// programs or trace processes (seccomp), and it runs with no_new_privs and
// tight resource limits. As root, it also runs as nobody in fresh network,
// IPC, UTS and PID namespaces. The parent sends the input over the child's
// socket and reads back the parsed result and what the child tried, so a
// bug in the parser stays inside the sandbox. The sandbox is declared
// ahead, so that children wait inside it: it prints how long a sandboxed
// parse takes with such a warm child and with a cold one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/forkserver/forkserver"
)

// paths are where the parent put a file the child may read and one it may
// not.
type paths struct {
	Allowed string // in the directory the child may read
	Secret  string // outside it
}

// summary is what the parser learns about its input, and what it could
// and could not do besides.
type summary struct {
	Keys   int      `json:"keys"`
	Uid    int      `json:"uid"`
	Failed string   `json:"failed,omitempty"`
	Tried  []string `json:"tried"`
}

// parse reads untrusted JSON from its socket and answers with a summary.
var parse = forkserver.Register("parse", func(ctx context.Context, c *forkserver.Child) error {
	var p paths
	if err := json.Unmarshal(c.Arg(), &p); err != nil {
		return err
	}
	s := summary{Uid: os.Getuid()}
	var doc map[string]any
	if err := json.NewDecoder(io.LimitReader(c.Conn(), 1<<20)).Decode(&doc); err != nil {
		s.Failed = err.Error()
	}
	s.Keys = len(doc)
	try := func(what string, err error) {
		result := "allowed"
		if err != nil {
			result = "denied: " + err.Error()
		}
		s.Tried = append(s.Tried, fmt.Sprintf("%-28s %s", what, result))
	}
	_, err := os.ReadFile(p.Allowed)
	try("read "+filepath.Base(p.Allowed), err)
	_, err = os.ReadFile(p.Secret)
	try("read "+filepath.Base(p.Secret), err)
	_, err = os.ReadFile("/etc/passwd")
	try("read /etc/passwd", err)
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		err = syscall.Close(fd)
	}
	try("socket(AF_INET)", os.NewSyscallError("socket", err))
	cmd := exec.Command("/bin/sh", "-c", "true")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr // not /dev/null, which it may not open
	try("exec /bin/sh", cmd.Run())
	return json.NewEncoder(c.Conn()).Encode(s)
})

func main() {
	forkserver.Main()
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() (err error) {
	top, err := os.MkdirTemp("", "sandbox-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(top)) }()
	p := paths{Allowed: filepath.Join(top, "allowed", "schema.txt"), Secret: filepath.Join(top, "secret.txt")}
	for _, step := range []func() error{
		func() error { return os.Chmod(top, 0o755) }, // for nobody, as root
		func() error { return os.Mkdir(filepath.Dir(p.Allowed), 0o755) },
		func() error { return os.WriteFile(p.Allowed, []byte("what the parser may read\n"), 0o644) },
		func() error { return os.WriteFile(p.Secret, []byte("what it must not\n"), 0o644) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	arg, err := json.Marshal(p)
	if err != nil {
		return err
	}

	attr := &forkserver.Attr{
		Socket:       true,
		Arg:          arg,
		NoNewPrivs:   true,
		Paths:        &forkserver.PathPolicy{ReadOnly: []string{filepath.Dir(p.Allowed)}},
		DenySyscalls: forkserver.SyscallsNetwork | forkserver.SyscallsExec | forkserver.SyscallsTrace,
		Rlimits: []forkserver.Rlimit{
			{Resource: syscall.RLIMIT_CPU, Cur: 2, Max: 2},            // seconds
			{Resource: syscall.RLIMIT_AS, Cur: 4 << 30, Max: 4 << 30}, // bytes of address space; Go reserves generously
			{Resource: syscall.RLIMIT_NOFILE, Cur: 16, Max: 16},
		},
	}
	if os.Geteuid() == 0 {
		attr.Credential = &forkserver.Credential{Uid: 65534, Gid: 65534} // nobody
		attr.Namespaces = forkserver.NewNet | forkserver.NewIPC | forkserver.NewUTS | forkserver.NewPID
	}

	// The sandbox declared ahead: the server keeps two children executed
	// and waiting inside it, which a Fork with the same settings takes.
	srv, err := forkserver.Start(&forkserver.Config{Sandboxes: []forkserver.Sandbox{{Attr: attr, Size: 2}}})
	if err != nil {
		return err
	}
	defer srv.Close() // after Stop, which ends it; a no-op then
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WaitWarm(ctx); err != nil {
		return err
	}
	for _, input := range []string{`{"name": "ok", "n": 1}`, `{"broken": `} {
		s, exit, err := parseIn(ctx, srv, attr, input)
		if err != nil {
			if errors.Is(err, errors.ErrUnsupported) {
				return fmt.Errorf("%w (this kernel lacks Landlock ABI 3 or seccomp)", err)
			}
			return err
		}
		fmt.Printf("input %q: %d keys, uid %d, %s", input, s.Keys, s.Uid, exit)
		if s.Failed != "" {
			fmt.Printf(", parse error: %s", s.Failed)
		}
		fmt.Println()
		for _, t := range s.Tried {
			fmt.Println("    " + t)
		}
	}
	if err := timeParses(ctx, srv, attr); err != nil {
		return err
	}
	return srv.Stop(ctx)
}

// timeParses prints how long a sandboxed parse takes, Fork to Wait, at the
// median of 20, with a warm child of the declared sandbox and with a cold
// one, which a server without it starts.
func timeParses(ctx context.Context, warm *forkserver.Server, attr *forkserver.Attr) error {
	cold, err := forkserver.Start(nil)
	if err != nil {
		return err
	}
	defer cold.Close()
	for _, srv := range []struct {
		name string
		*forkserver.Server
	}{{"warm", warm}, {"cold", cold}} {
		var took []time.Duration
		for range 20 {
			if err := srv.WaitWarm(ctx); err != nil { // replacements ready: a parse, not a refill, is timed
				return err
			}
			t0 := time.Now()
			if _, _, err := parseIn(ctx, srv.Server, attr, `{"n": 1}`); err != nil {
				return err
			}
			took = append(took, time.Since(t0))
		}
		slices.Sort(took)
		fmt.Printf("a sandboxed parse, %s: %v at the median of %d\n", srv.name, took[len(took)/2].Round(10*time.Microsecond), len(took))
	}
	return cold.Stop(ctx)
}

// parseIn has a sandboxed child parse input.
func parseIn(ctx context.Context, srv *forkserver.Server, attr *forkserver.Attr, input string) (*summary, *forkserver.Exit, error) {
	p, err := srv.Fork(ctx, parse, attr)
	if err != nil {
		return nil, nil, err
	}
	conn := p.Conn()
	var s summary
	_, err = io.WriteString(conn, input)
	if err == nil {
		err = conn.CloseWrite()
	}
	if err == nil {
		err = json.NewDecoder(conn).Decode(&s)
	}
	err = errors.Join(err, conn.Close())
	exit, werr := p.Wait()
	if err = errors.Join(err, werr); err != nil {
		return nil, nil, err
	}
	return &s, exit, nil
}
