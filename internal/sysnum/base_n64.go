//go:build mips64 || mips64le

package sysnum

// base is the n64 interface's, which Go uses on 64-bit MIPS.
const base = 5000
