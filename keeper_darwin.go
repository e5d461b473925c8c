package forkserver

// macOS has no child subreaper: Start executes the server itself, and a
// process a child leaves behind is init's.

const (
	roleKeeper = "keeper"
	serverRole = "server"
)

// runKeeper is never run: Start starts no keeper here.
func runKeeper() int { return 2 }

// childPids finds nothing: with no subreaper, no stray comes back to the
// server.
func childPids() []int { return nil }

// eachThreadChildren calls nothing, as childPids finds nothing.
func eachThreadChildren(fn func(tid int, pids []int)) {}

// haveThreadChildren reports false: macOS lists no thread's children.
func haveThreadChildren() bool { return false }
