//go:build linux

package forkserver_test

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/forkserver/forkserver"
)

// TestWaitWarmAndStats checks that WaitWarm returns once the program holds
// the whole pool, and Stats counts what a user needs to size it.
func TestWaitWarmAndStats(t *testing.T) {
	srv := forkserver.StartWith(t, &forkserver.Config{PoolSize: 2})
	ctx := forkserver.TestContext(t)
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	if held, st := forkserver.WarmHeld(srv), srv.Stats(); held != 2 || st.Warm != 2 || st.PoolSize != 2 {
		t.Fatalf("after WaitWarm: %d warm children held, Stats %+v; want 2", held, st)
	}
	hang := fork(t, srv, faultHang, &forkserver.Attr{Socket: true}) // warm: the pool is full
	ready(t, hang)
	for range 2 {
		forkserver.WaitSuccess(t, fork(t, srv, returnNil, nil))
	}
	forkserver.WaitSuccess(t, fork(t, srv, returnNil, &forkserver.Attr{Server: true})) // the server creates it: no miss
	forkserver.Eventually(t, "the exits to be counted", func() bool { return srv.Stats().Alive == 1 })
	st := srv.Stats()
	if st.WarmForks+st.ColdForks != 4 || st.WarmForks < 1 || st.ColdForks < 1 || st.PoolMisses != st.ColdForks-1 {
		t.Errorf("after 4 Forks, 1 of them ineligible for the pool: %+v", st)
	}
	if err := srv.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Refills != st.WarmForks || st.Warm != 2 {
		t.Errorf("after the pool refilled: %+v; want a refill for every warm Fork", st)
	}

	// A Server without a pool counts nothing and waits for nothing.
	if st := forkserver.StartWith(t, nil).Stats(); st != (forkserver.Stats{}) {
		t.Errorf("Stats of a new server without a pool: %+v", st)
	}
	if err := forkserver.StartWith(t, nil).WaitWarm(ctx); err != nil {
		t.Errorf("WaitWarm without a pool: %v", err)
	}
	closed := forkserver.StartWith(t, &forkserver.Config{PoolSize: 1})
	closed.Close()
	if err := closed.WaitWarm(ctx); err == nil {
		t.Error("WaitWarm on a closed Server succeeded")
	}
}

// TestRaceExitSleep checks that under the race detector the server and its
// children run with atexit_sleep_ms=0 added to GORACE; the options the
// program set stay, and so does its own value for that one.
func TestRaceExitSleep(t *testing.T) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	for _, c := range []struct{ gorace, race, norace string }{
		{"", "atexit_sleep_ms=0", ""},
		{"GORACE=halt_on_error=1", "halt_on_error=1 atexit_sleep_ms=0", "halt_on_error=1"},
		{"GORACE=atexit_sleep_ms=50 halt_on_error=1", "atexit_sleep_ms=50 halt_on_error=1", "atexit_sleep_ms=50 halt_on_error=1"},
	} {
		cfg := &forkserver.Config{Env: env}
		if c.gorace != "" {
			cfg.Env = append(env[:len(env):len(env)], c.gorace)
		}
		srv := forkserver.StartWith(t, cfg)
		p := fork(t, srv, getenv, &forkserver.Attr{Socket: true, Arg: []byte("GORACE")})
		got, err := io.ReadAll(p.Conn())
		forkserver.WaitSuccess(t, p)
		want := c.norace
		if forkserver.RaceEnabled {
			want = c.race
		}
		if err != nil || string(got) != want {
			t.Errorf("program's %q: child sees GORACE=%q, %v; want %q (race detector: %v)", c.gorace, got, err, want, forkserver.RaceEnabled)
		}
	}
}
