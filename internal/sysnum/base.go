//go:build !mips && !mipsle && !mips64 && !mips64le

package sysnum

// base is 0: the architecture numbers the calls as the generic table does.
const base = 0
