// Command workers starts a fork server, forks a few workers that each
// upper-case what they are sent over their socket, and reports how each one
// ended.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/forkserver/forkserver"
)

// upper answers every line it reads on its socket with the line in upper
// case, until the socket closes.
var upper = forkserver.Register("upper", func(ctx context.Context, c *forkserver.Child) error {
	r := bufio.NewScanner(c.Conn())
	for r.Scan() {
		line := append(bytes.ToUpper(r.Bytes()), '\n')
		if _, err := c.Conn().Write(line); err != nil {
			return err
		}
	}
	return r.Err()
})

func main() {
	forkserver.Main()
	log.SetFlags(0)

	srv, err := forkserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	fmt.Printf("fork server running as pid %d\n", srv.Pid())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, word := range []string{"alpha", "beta", "gamma"} {
		p, err := srv.Fork(ctx, upper, &forkserver.Attr{Socket: true})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintln(p.Conn(), word)
		reply, err := bufio.NewReader(p.Conn()).ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		p.Conn().CloseWrite() // the worker sees end of input and returns
		exit, err := p.Wait()
		p.Conn().Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("worker %d: %q -> %q, %s, %v cpu\n", exit.Pid, word, reply[:len(reply)-1],
			exit, time.Duration(exit.Rusage.Utime.Nano()+exit.Rusage.Stime.Nano()))
	}
	if err := srv.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("server stopped")
}
