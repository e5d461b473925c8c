//go:build linux

package forkserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/forkserver/forkserver"
)

// shout is registered at package level, so the server and every child,
// fresh executions of this binary, know it too.
var shout = forkserver.Register("example-shout", func(ctx context.Context, c *forkserver.Child) error {
	_, err := io.WriteString(c.Conn(), strings.ToUpper(string(c.Arg())))
	return err
})

func ExampleServer_Fork() {
	// In a real program, forkserver.Main() is the first statement of main.
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	p, err := srv.Fork(ctx, shout, &forkserver.Attr{Socket: true, Arg: []byte("hello")})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Conn().Close()
	answer, err := io.ReadAll(p.Conn())
	if err != nil {
		log.Fatal(err)
	}
	exit, err := p.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, %s\n", answer, exit)

	if err := srv.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: HELLO, exit status 0
}

func ExampleServer_Exec() {
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// A name without a slash is looked up in PATH, as os/exec does. Any
	// io.Writer can take the program's output.
	var out bytes.Buffer
	p, err := srv.Exec(context.Background(), "echo", []string{"echo", "hello from echo"}, &forkserver.Attr{Stdout: &out})
	if err != nil {
		log.Fatal(err)
	}
	exit, err := p.Wait() // returns once the output is copied, too
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s%s\n", out.String(), exit)
	// Output:
	// hello from echo
	// exit status 0
}

// sum prints the sum of the integers in its argument.
var sum = forkserver.Register("example-sum", func(ctx context.Context, c *forkserver.Child) error {
	total := 0
	for _, field := range strings.Fields(string(c.Arg())) {
		n, err := strconv.Atoi(field)
		if err != nil {
			return err
		}
		total += n
	}
	_, err := fmt.Println(total)
	return err
})

func ExampleServer_Output() {
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	out, err := srv.Output(ctx, sum, &forkserver.Attr{Arg: []byte("1 2 3")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", out)

	// A function that returns an error exits with status 1, after
	// printing the error on its standard error, which the ExitError holds.
	_, err = srv.Output(ctx, sum, &forkserver.Attr{Arg: []byte("1 two")})
	var exitErr *forkserver.ExitError
	if errors.As(err, &exitErr) {
		fmt.Printf("%s: %s", exitErr, exitErr.Stderr)
	}
	// Output:
	// 6
	// exit status 1: forkserver: example-sum: strconv.Atoi: parsing "two": invalid syntax
}

func ExampleServer_ExecOutput() {
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	out, err := srv.ExecOutput(context.Background(), "sh", []string{"sh", "-c", "echo 'to stdout'; echo 'to stderr' >&2; exit 3"}, nil)
	var exitErr *forkserver.ExitError
	if errors.As(err, &exitErr) {
		fmt.Printf("%q, %s, %q\n", out, exitErr, exitErr.Stderr)
	}
	// Output: "to stdout\n", exit status 3, "to stderr\n"
}

// parse reads a JSON object from its socket, which is all it can reach of
// the program, and answers with the object's keys.
var parse = forkserver.Register("example-parse", func(ctx context.Context, c *forkserver.Child) error {
	var doc map[string]any
	if err := json.NewDecoder(c.Conn()).Decode(&doc); err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(doc))
	_, err := fmt.Fprintf(c.Conn(), "%d keys: %s", len(keys), strings.Join(keys, ", "))
	return err
})

// A parser of untrusted input runs in a child with less than the program
// has: its own memory, no_new_privs, tight limits and, when the program
// runs as root, the user nobody.
func Example_privilegeSeparation() {
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	attr := &forkserver.Attr{
		Socket:     true,
		NoNewPrivs: true, // neither it nor what it executes can gain privileges
		Rlimits: []forkserver.Rlimit{
			{Resource: syscall.RLIMIT_CPU, Cur: 2, Max: 2},      // seconds of processor time
			{Resource: syscall.RLIMIT_NOFILE, Cur: 32, Max: 32}, // open descriptors
		},
	}
	if os.Geteuid() == 0 {
		attr.Credential = &forkserver.Credential{Uid: 65534, Gid: 65534} // nobody
	}
	p, err := srv.Fork(context.Background(), parse, attr)
	if err != nil {
		log.Fatal(err)
	}
	conn := p.Conn()
	defer conn.Close()
	untrusted := `{"name": "report", "size": 3, "tags": ["a", "b"]}`
	if _, err := io.WriteString(conn, untrusted); err != nil {
		log.Fatal(err)
	}
	conn.CloseWrite() // the end of the input
	summary, err := io.ReadAll(conn)
	if err != nil {
		log.Fatal(err)
	}
	exit, err := p.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s)\n", summary, exit)
	// Output: 3 keys: name, size, tags (exit status 0)
}

// sendPipe sends the program the read end of a pipe that holds a message.
var sendPipe = forkserver.Register("example-send-pipe", func(ctx context.Context, c *forkserver.Child) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := w.WriteString("written by the child"); err != nil {
		return err
	}
	w.Close()
	return forkserver.WriteFds(c.Conn(), []byte{'!'}, r)
})

// A child passes the program a descriptor over its socket: the same works
// the other way, and between any two processes joined by a unix socket.
func ExampleWriteFds() {
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	p, err := srv.Fork(context.Background(), sendPipe, &forkserver.Attr{Socket: true})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Conn().Close()
	_, files, err := forkserver.ReadFds(p.Conn(), make([]byte, 1), 1)
	if err != nil {
		log.Fatal(err)
	}
	f := files[0] // ours to close
	defer f.Close()
	msg, err := io.ReadAll(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", msg)
	if _, err := p.Wait(); err != nil {
		log.Fatal(err)
	}
	// Output: written by the child
}

// setGreeting runs in the server, through Eval: it changes the environment
// that children forked afterwards inherit.
var setGreeting = forkserver.Register("example-set-greeting", func(ctx context.Context, c *forkserver.Child) error {
	return os.Setenv("GREETING", string(c.Arg()))
})

// greet writes the GREETING it was started with to its socket.
var greet = forkserver.Register("example-greet", func(ctx context.Context, c *forkserver.Child) error {
	_, err := io.WriteString(c.Conn(), os.Getenv("GREETING"))
	return err
})

func ExampleServer_Eval() {
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	if err := srv.Eval(ctx, setGreeting, []byte("hello from the server")); err != nil {
		log.Fatal(err)
	}
	p, err := srv.Fork(ctx, greet, &forkserver.Attr{Socket: true})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Conn().Close()
	greeting, err := io.ReadAll(p.Conn())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", greeting)
	// Output: hello from the server
}

// serveUntilCancelled says it is ready, then serves until SIGTERM cancels
// its context, and returns cleanly.
var serveUntilCancelled = forkserver.Register("example-serve", func(ctx context.Context, c *forkserver.Child) error {
	c.Conn().Write([]byte("ready"))
	<-ctx.Done()
	return nil
})

// A Fork's ctx governs the child's life, as exec.CommandContext's does.
// Here its end sends the child SIGTERM, which cancels the context of the
// child's function, and SIGKILL should the child still run five seconds
// later.
func ExampleServer_Fork_cancel() {
	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := srv.Fork(ctx, serveUntilCancelled, &forkserver.Attr{
		Socket:    true,
		Cancel:    syscall.SIGTERM,
		WaitDelay: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Conn().Close()
	if _, err := io.ReadFull(p.Conn(), make([]byte, len("ready"))); err != nil {
		log.Fatal(err)
	}

	cancel()
	exit, err := p.Wait()
	fmt.Println(exit, errors.Is(err, context.Canceled))
	// Output: exit status 0 true
}
