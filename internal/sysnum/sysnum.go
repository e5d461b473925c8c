// Package sysnum numbers the Linux system calls that package syscall
// lacks, all added since Linux 5.1: every architecture numbers those alike,
// but MIPS, each of whose interfaces adds its own base to the number.
package sysnum

// The calls, from the kernel's include/uapi/asm-generic/unistd.h.
const (
	PidfdSendSignal       = base + 424
	PidfdOpen             = base + 434
	Clone3                = base + 435
	LandlockCreateRuleset = base + 444
	LandlockAddRule       = base + 445
	LandlockRestrictSelf  = base + 446
)
