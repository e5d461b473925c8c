package forkserver

// idleEnv is never set on macOS, which has no SCHED_IDLE: the pool's
// children start at normal priority.
const idleEnv = "FORKSERVER_IDLE"

func canLeaveIdle() bool { return false }
func startIdle(pid int)  {}
func leaveIdle() error   { return nil }
func listIdle()          {}
