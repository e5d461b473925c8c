//go:build linux

package forkserver_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

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
