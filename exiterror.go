package forkserver

// ExitError is the error [Server.Output] and [Server.ExecOutput] return,
// wrapped with the operation, when the child does not exit with status 0.
// Find it with errors.As:
//
//	var exitErr *forkserver.ExitError
//	if errors.As(err, &exitErr) {
//		log.Printf("child %d: %s: %s", exitErr.Pid, exitErr, exitErr.Stderr)
//	}
type ExitError struct {
	*Exit

	// Stderr holds what the child wrote to its standard error, if the
	// caller left Attr.Stderr nil: all of it up to 64 KiB, else its first
	// and last 32 KiB with a line between them that says how much was
	// left out.
	Stderr []byte
}

// Error describes how the child ended, as Exit.String does.
func (e *ExitError) Error() string { return e.Exit.String() }
