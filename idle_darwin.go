package forkserver

import (
	"errors"
	"syscall"
)

// idleEnv is never set on macOS, which has no SCHED_IDLE: the pool's
// children start at normal priority.
const idleEnv = "FORKSERVER_IDLE"

func canLeaveIdle() bool { return false }
func leaveIdle() error   { return nil }

// hasten is never called: there is no spawner.
func hasten(pid int) {}

// spawnIdle is never called: canLeaveIdle is false.
func (sv *supervisor) spawnIdle(path string, argv []string, attr *syscall.ProcAttr, add func(pid int) error) error {
	return errors.ErrUnsupported
}
