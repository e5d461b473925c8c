//go:build linux

package forkserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
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
