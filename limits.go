//go:build linux || darwin

package forkserver

// Limits a Go child can live with.

import (
	"fmt"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// minGoAddressSpace is the least RLIMIT_AS that Fork accepts. The Go
// runtime reserves over a gigabyte of address space as it starts (1.2 GB
// measured on amd64, with no heap to speak of), before the child applies
// its limits: a lower limit makes its next reservation, or thread, fail
// at random, and the runtime then ends the child.
const minGoAddressSpace = 4 << 30

// goLimitsAdmissible refuses an RLIMIT_AS that a Go child would not
// survive.
func goLimitsAdmissible(st *wire.Settings) error {
	for _, r := range st.Rlimits {
		if r.Resource == uint32(syscall.RLIMIT_AS) && r.Cur < minGoAddressSpace {
			return fmt.Errorf("RLIMIT_AS of %d bytes: a Go child reserves more address space than that as it starts; bound its memory with RLIMIT_DATA, or give RLIMIT_AS at least %d", r.Cur, minGoAddressSpace)
		}
	}
	return nil
}
