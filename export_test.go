//go:build linux

package forkserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// The helpers of helpers_test.go, exported for forkserver_test, which
// calls them by these names: Go lets an external test package see no
// unexported name.
var (
	TestContext = testContext
	StartWith   = startWith
	TestPipe    = testPipe
	Wait        = wait
	WaitBounded = waitBounded
	WaitSuccess = waitSuccess
	ExpectByte  = expectByte
	Await       = await
	Eventually  = eventually
	Alive       = alive
	WaitGone    = waitGone
	ChildrenOf  = childrenOf
	CountFds    = countFds
	ProcStatus  = procStatus
)

const (
	HangBound  = hangBound
	BenchBound = benchBound
)

// ForkBomb is a child that forks itself through its connection as fast as
// it can: see limits_test.go.
var ForkBomb = forkBomb

// WarmHeld returns how many warm children the server has handed to s.
func WarmHeld(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.warm)
}

// Watching reports whether p was watching the ctx it was forked with,
// and stops it doing so.
func Watching(p *Process) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopWatch != nil && p.stopWatch()
}

// RaceEnabled reports whether the test binary was built with the race
// detector.
const RaceEnabled = raceEnabled

// WarmPids returns the pids of the warm children of kind s holds: 0 the
// plain pool's, i those of the i-th of Config.Sandboxes.
func WarmPids(s *Server, kind int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int
	for _, w := range s.warm {
		if w.kind == kind {
			pids = append(pids, w.pid)
		}
	}
	return pids
}

// RoleEnv is the variable that tells a process its role, which package
// initialisation of a test can read.
const RoleEnv = roleEnv

// trampolinesFunc reports, as its error, how many Execs the server ran
// through the exec-limits trampoline: see Trampolines.
var trampolinesFunc = Register("test-trampolines", func(ctx context.Context, c *Child) error {
	return fmt.Errorf("trampolines=%d", trampolines.Load())
})

// Trampolines returns how many Execs srv has run through the exec-limits
// trampoline.
func Trampolines(t testing.TB, srv *Server) int64 {
	t.Helper()
	err := srv.Eval(testContext(t), trampolinesFunc, nil)
	var n int64
	if err == nil {
		t.Fatal("counting trampolines: no count")
	}
	if _, serr := fmt.Sscanf(err.Error()[strings.LastIndex(err.Error(), "trampolines="):], "trampolines=%d", &n); serr != nil {
		t.Fatalf("counting trampolines: %v", err)
	}
	return n
}
