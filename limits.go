//go:build linux || darwin

package forkserver

// Limits a Go child can live with.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"

	"github.com/forkserver/forkserver/internal/wire"
)

// minGoAddressSpace is the least RLIMIT_AS that Fork accepts. The Go
// runtime reserves over a gigabyte of address space as it starts (1.2 GB
// measured on amd64, with no heap to speak of), before the child applies
// its limits: a lower limit makes its next reservation, or thread, fail
// at random, and the runtime then ends the child.
const minGoAddressSpace uint64 = 4 << 30

// The RLIMIT_DATA backstop of Attr.MemoryLimit is the data a child has
// mapped as it applies its limit, plus dataFactor times the limit, plus
// dataHeadroom. The Go runtime never unmaps its heap, so RLIMIT_DATA
// counts the most heap the child ever mapped, which fragmentation takes
// above what the collector keeps it to: measured, 1.5 to 1.8 times a
// limit of 256 MiB after 1000 allocations of 64 MiB, 128 MiB held at
// once, and 4.4 times it under the race detector, whose shadow memory
// counts too. The headroom is for the thread stacks of a binary linked
// with cgo (8 MiB each) and the runtime's own structures.
//
// A child whose Paths hide /proc/self/status from it counts as mapped the
// Go runtime's own memory plus nonGoData, for what the runtime does not
// count: measured, 33 MiB in a fresh Go program, 73 MiB linked with cgo,
// 300 MiB under the race detector.
var dataFactor, dataHeadroom, nonGoData uint64 = 3, 128 << 20, 128 << 20

func init() {
	if raceEnabled {
		dataFactor, dataHeadroom, nonGoData = 8, 1<<30, 512<<20
	}
}

// goLimitsAdmissible refuses an RLIMIT_AS that a Go child would not
// survive, and a MemoryLimit where the child could not apply it.
func goLimitsAdmissible(st *wire.Settings) error {
	for _, r := range st.Rlimits {
		if r.Resource == uint32(syscall.RLIMIT_AS) && r.Cur < minGoAddressSpace {
			return fmt.Errorf("RLIMIT_AS of %d bytes: a Go child reserves more address space than that as it starts; bound its memory with MemoryLimit, or give RLIMIT_AS at least %d", r.Cur, minGoAddressSpace)
		}
	}
	if st.MemoryLimit != 0 && runtime.GOOS != "linux" {
		return fmt.Errorf("MemoryLimit: %w", errors.ErrUnsupported) // no /proc to learn the data mapped, and an RLIMIT_DATA mmap ignores
	}
	return nil
}

// applyMemoryLimit sets the Go runtime's memory limit of this child to
// limit, if not zero, and lowers its RLIMIT_DATA to the backstop that
// Attr.MemoryLimit documents; a lower RLIMIT_DATA stays.
func applyMemoryLimit(limit uint64) error {
	if limit == 0 {
		return nil
	}
	data, err := mappedData()
	if err != nil {
		return err
	}
	debug.SetMemoryLimit(int64(limit))
	backstop := data + dataFactor*limit + dataHeadroom
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_DATA, &r); err != nil {
		return os.NewSyscallError("getrlimit(RLIMIT_DATA)", err)
	}
	r.Cur, r.Max = min(r.Cur, backstop), min(r.Max, backstop)
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &r); err != nil {
		return os.NewSyscallError("setrlimit(RLIMIT_DATA)", err)
	}
	return nil
}

// mappedData returns the bytes of private writable memory this process
// has mapped, which RLIMIT_DATA counts: VmData in /proc/self/status, or,
// where Landlock denies that, what the Go runtime has mapped plus
// nonGoData.
func mappedData() (uint64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if errors.Is(err, os.ErrPermission) {
		s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			return s[0].Value.Uint64() + nonGoData, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("MemoryLimit: %w", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmData:"); ok {
			if kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
				return kb << 10, nil
			}
		}
	}
	return 0, errors.New("MemoryLimit: no VmData in /proc/self/status")
}
