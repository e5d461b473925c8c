//go:build linux

package forkserver_test

import (
	"strings"
	"syscall"
	"testing"

	"github.com/forkserver/forkserver"
)

// TestMemoryAddressSpaceRefused checks that Fork refuses an RLIMIT_AS
// below what a Go child reserves as it starts, naming MemoryLimit.
func TestMemoryAddressSpaceRefused(t *testing.T) {
	srv := start(t)
	_, err := srv.Fork(forkserver.TestContext(t), returnNil, &forkserver.Attr{Rlimits: []forkserver.Rlimit{{Resource: syscall.RLIMIT_AS, Cur: 1 << 30, Max: 1 << 30}}})
	if err == nil || !strings.Contains(err.Error(), "MemoryLimit") {
		t.Errorf("Fork with RLIMIT_AS of 1 GiB: %v, want a refusal naming MemoryLimit", err)
	}
}
