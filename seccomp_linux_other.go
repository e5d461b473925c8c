//go:build linux && !amd64 && !arm64

package forkserver

// The seccomp filter is written for amd64 and arm64 only: here
// DenySyscalls is refused.
const (
	auditArch  = 0
	sysSeccomp = 0
	x32Bit     = 0
)

var sysnums sysnumTable
