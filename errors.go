package forkserver

// Error is the error of an operation of this package that failed: what was
// asked, of which function or program, and why. Every exported function
// returns nil or an *Error, but for the end of the stream from [ReadFds].
// Sentinel errors such as [ErrUnknownFunc] and errors of the system such
// as [io/fs.ErrNotExist] stay matchable with errors.Is through it.
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

// Error returns "forkserver: ", the operation, the name if any, and the
// cause: the one place that names the package.
func (e *Error) Error() string {
	s := "forkserver: " + e.Op
	if e.Name != "" {
		s += " " + e.Name
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// opError returns err, unless nil, as the error of the operation op on
// name; an error that already names its operation is returned as it is.
func opError(op, name string, err error) error {
	if _, ok := err.(*Error); ok || err == nil {
		return err
	}
	return &Error{Op: op, Name: name, Err: err}
}
