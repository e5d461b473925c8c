package forkserver

import "syscall"

// serverSysProcAttr makes the kernel send the server SIGTERM when the
// program dies, a second guard behind the end-of-file on its connection.
// Not SIGKILL: the server must live on long enough to kill its children.
func serverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
