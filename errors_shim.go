package forkserver

import (
	"errors"
	"fmt"
)

// newError and errorf remain only for the sandbox's files (landlock_linux.go,
// seccomp_linux.go, sandbox_linux.go, sandbox_darwin.go), which move to
// internal/sandbox: they are errors.New and fmt.Errorf, and this file goes
// once those files have.
func newError(text string) error { return errors.New(text) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
