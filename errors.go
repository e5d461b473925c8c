package forkserver

import (
	"errors"
	"fmt"
)

// Error is the error of an operation of this package that failed: what was
// asked, of which function or program, and why. Sentinel errors such as
// [ErrUnknownFunc] and errors of the system such as [io/fs.ErrNotExist] stay
// matchable with errors.Is through it.
type Error struct {
	// Op is the operation: "fork", "exec", "eval", "signal", "wait",
	// "start", "stop"...
	Op string

	// Name is the function's name, for Fork, Eval and the Wait of a
	// forked child, or the program's path, for Exec and the Wait of an
	// executed one. It is empty when the operation names neither.
	Name string

	// Err is the cause.
	Err error
}

// Error returns "forkserver: " followed by the operation, the name if
// there is one, and the cause.
func (e *Error) Error() string {
	s := "forkserver: " + e.Op
	if e.Name != "" {
		s += " " + e.Name
	}
	return s + ": " + causeText(e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// pkgError is an error made by this package. Standing alone its text
// begins with the package's name; after the operation that an [Error]
// names, it does not.
type pkgError struct{ err error }

func (e *pkgError) Error() string { return "forkserver: " + e.err.Error() }
func (e *pkgError) Unwrap() error { return e.err }

// causeText is err's text as the cause of an [Error].
func causeText(err error) string {
	if p, ok := err.(*pkgError); ok {
		return p.err.Error()
	}
	return err.Error()
}

// newError returns an error of this package with text.
func newError(text string) error { return &pkgError{errors.New(text)} }

// errorf is fmt.Errorf for errors of this package: a *pkgError among args
// is formatted without the package's name, and stays matchable with
// errors.Is where the verb is %w.
func errorf(format string, args ...any) error {
	for i, a := range args {
		if p, ok := a.(*pkgError); ok {
			args[i] = bareError{p}
		}
	}
	return &pkgError{fmt.Errorf(format, args...)}
}

// bareError is an error of this package formatted without its name.
type bareError struct{ p *pkgError }

func (e bareError) Error() string { return e.p.err.Error() }
func (e bareError) Unwrap() error { return e.p }

// opError returns err as the error of the operation op on name. An error
// that already names its operation is returned as it is.
func opError(op, name string, err error) error {
	if _, ok := err.(*Error); ok {
		return err
	}
	return &Error{Op: op, Name: name, Err: err}
}
