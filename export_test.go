//go:build linux

package forkserver

// The shared test helpers of helpers_test.go, for forkserver_test, which
// gives them back their short names.
var (
	TestContext = testContext
	StartServer = startTestServer
	TestPipe    = testPipe
	WaitExit    = waitExit
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

const HangBound = hangBound

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
