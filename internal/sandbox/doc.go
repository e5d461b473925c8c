// Package sandbox holds the kernel side of a child's sandbox: Landlock
// rulesets for its path policies, the seccomp program that denies groups
// of system calls, with the system call numbers it is written for, one
// table per architecture, and the raw system calls that build and install
// them, each behind one wrapper in sys_linux.go.
//
// The package touches only the kernel. It knows nothing of launches,
// roles, connections or the wire, and it never calls back into the
// package that uses it: that package decides when a child enters a
// policy, this one how.
//
// The seccomp program is plain data, assembled on any system, so that
// its tests run it through an interpreter wherever they run; installing
// it, and everything about Landlock, is Linux only.
package sandbox
