package forkserver

import "syscall"

// serverSysProcAttr: macOS has no parent-death signal; the server relies on
// the end-of-file on its connection alone.
func serverSysProcAttr() *syscall.SysProcAttr { return nil }
