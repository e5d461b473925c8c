//go:build mips || mipsle

package sysnum

// base is the o32 interface's, which Go uses on 32-bit MIPS.
const base = 4000
