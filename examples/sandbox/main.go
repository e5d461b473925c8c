// Command sandbox parses untrusted input in a child that can do little
// else: as root it runs as nobody in an empty root directory, in fresh
// network, IPC, UTS, PID and mount namespaces; in every case it has
// no_new_privs and tight resource limits. The parent sends the input over
// the child's socket and reads back the parsed result, so a bug in the
// parser stays inside the sandbox.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"syscall"
	"time"

	"github.com/forkserver/forkserver"
)

// summary is what the parser learns about its input.
type summary struct {
	Keys   int    `json:"keys"`
	Uid    int    `json:"uid"`
	Pid    int    `json:"pid"`
	Root   string `json:"root"` // what the child sees in its root directory
	Failed string `json:"failed,omitempty"`
}

// parse reads untrusted JSON from its socket and answers with a summary.
var parse = forkserver.Register("parse", func(ctx context.Context, c *forkserver.Child) error {
	var doc map[string]any
	s := summary{Uid: os.Getuid(), Pid: os.Getpid()}
	if err := json.NewDecoder(io.LimitReader(c.Conn(), 1<<20)).Decode(&doc); err != nil {
		s.Failed = err.Error()
	}
	s.Keys = len(doc)
	entries, _ := os.ReadDir("/")
	s.Root = fmt.Sprintf("%d entries", len(entries))
	return json.NewEncoder(c.Conn()).Encode(s)
})

func main() {
	forkserver.Main()
	log.SetFlags(0)

	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	attr := &forkserver.Attr{
		Socket:     true,
		NoNewPrivs: true,
		Rlimits: []forkserver.Rlimit{
			{Resource: syscall.RLIMIT_CPU, Cur: 2, Max: 2},            // seconds
			{Resource: syscall.RLIMIT_AS, Cur: 4 << 30, Max: 4 << 30}, // bytes of address space; Go reserves generously
			{Resource: syscall.RLIMIT_NOFILE, Cur: 16, Max: 16},
		},
	}
	if os.Geteuid() == 0 {
		empty, err := os.MkdirTemp("", "sandbox-root-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.Remove(empty)
		attr.Chroot = empty
		attr.Credential = &forkserver.Credential{Uid: 65534, Gid: 65534} // nobody
		attr.Namespaces = forkserver.NewNet | forkserver.NewIPC | forkserver.NewUTS | forkserver.NewPID | forkserver.NewMount
	} else {
		fmt.Println("not root: the child keeps your user and root directory (run as root for the full sandbox)")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, input := range []string{`{"name": "ok", "n": 1}`, `{"broken": `} {
		p, err := srv.Fork(ctx, parse, attr)
		if err != nil {
			log.Fatal(err)
		}
		io.WriteString(p.Conn(), input)
		p.Conn().CloseWrite()
		var s summary
		if err := json.NewDecoder(p.Conn()).Decode(&s); err != nil {
			log.Fatal(err)
		}
		p.Conn().Close()
		exit, err := p.Wait()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("input %-24q -> %+v (%s)\n", input, s, exit)
	}
	if err := srv.Stop(ctx); err != nil {
		log.Fatal(err)
	}
}
