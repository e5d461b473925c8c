package forkserver

// idleEnv is never set on macOS, which has no SCHED_IDLE: the pool's
// children start at normal priority.
const idleEnv = "FORKSERVER_IDLE"

func canLeaveIdle() bool             { return false }
func atIdlePriority(fn func()) error { fn(); return nil }
func leaveIdle() error               { return nil }
func listIdle()                      {}
