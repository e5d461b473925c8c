//go:build linux

package forkserver_test

import (
	"os/exec"
	"testing"

	"github.com/forkserver/forkserver"
)

// BenchmarkCmdRun: starting /bin/true through Cmd and waiting for it
// (srv.Command(...).Run()), interleaved with the same through Exec and
// Process.Wait, which Cmd is built on, and through os/exec. Beside
// reportExec's figures (os/exec as exec-*), it reports Exec's as
// processexec-p50-µs and -p99-µs, and Cmd's median over Exec's as x-processexec.
func BenchmarkCmdRun(b *testing.B) {
	benchSetupLoad(b)
	srv := forkserver.StartWith(b, nil)
	ctx := forkserver.TestContext(b)
	r := benchInterleave(b, nil,
		benchOp{"Cmd Run", func(clock *benchClock) {
			clock.begin()
			err := srv.Command("/bin/true").Run()
			clock.end()
			if err != nil {
				b.Fatal(err)
			}
		}},
		benchOp{"os/exec Run", func(clock *benchClock) {
			clock.begin()
			err := exec.Command("/bin/true").Run()
			clock.end()
			if err != nil {
				b.Fatal(err)
			}
		}},
		benchOp{"Exec+Wait", func(clock *benchClock) {
			clock.begin()
			p, err := srv.Exec(ctx, "/bin/true", []string{"/bin/true"}, &forkserver.Attr{})
			if err == nil {
				_, err = p.Wait()
			}
			clock.end()
			if err != nil {
				b.Fatal(err)
			}
		}})
	r.reportExec(b)
	r.report(b, 2, "processexec-")
	r.ratio(b, "x-processexec", r.p(2, 0.50))
}
