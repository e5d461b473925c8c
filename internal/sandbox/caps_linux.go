package sandbox

// Capabilities: what a thread passes on to the programs it executes.

import (
	"os"
	"strconv"
	"strings"
)

// CapSysChroot is CAP_SYS_CHROOT.
const CapSysChroot = 18

// LimitExec limits what any program the calling thread executes, and
// anything those execute, can hold: the thread's bounding and ambient sets
// become empty and its inheritable set keep, a mask of capabilities.
// A program executed then holds no capability, root or not, but those in
// keep (through the inheritable set for root, for anyone else where they
// are raised as ambient on the way). The thread's own effective and
// permitted sets stay, for what it does before the execution. A thread
// with no capability is left as it is. The sets are the thread's alone:
// call it on a thread locked for good.
func LimitExec(keep uint64) error {
	data, err := capget()
	if err != nil {
		return err
	}
	permitted := uint64(data[0].permitted) | uint64(data[1].permitted)<<32
	if permitted == 0 {
		return nil
	}
	keep &= permitted
	data[0].inheritable, data[1].inheritable = uint32(keep), uint32(keep>>32)
	if err := capset(data); err != nil { // before the bounding set empties: it bounds what may be raised here
		return err
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := capbsetDrop(c); err != nil {
			return err
		}
	}
	return capAmbientClearAll()
}

// lastCap returns the highest capability the kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
