package forkserver

import (
	"errors"
	"fmt"

	"github.com/forkserver/forkserver/internal/sandbox"
	"github.com/forkserver/forkserver/internal/wire"
)

// sandboxAdmissible refuses path policies and system call groups: macOS
// has neither Landlock nor seccomp.
func sandboxAdmissible(st *wire.Settings, external bool) error {
	if len(st.PathLayers) > 0 || st.Syscalls != 0 {
		return fmt.Errorf("Paths and DenySyscalls: %w", errors.ErrUnsupported)
	}
	return nil
}

// layerRulesets has nothing to do: sandboxAdmissible refuses Paths.
func (l *launch) layerRulesets([]string) error { return nil }

// startFiles and programFiles have nothing to list: no child is given
// rulesets.
func startFiles() []string                 { return nil }
func programFiles(string, string) []string { return nil }

// enterLandlock has nothing to do: no child is given rulesets.
func enterLandlock(int, string) error { return nil }

// pathRulesets is never reached: sandboxAdmissible refuses Paths.
func pathRulesets([]wire.PathLayer) ([]int, error) { return nil, errors.ErrUnsupported }

// enterSandbox and enterSandboxAhead have nothing to do:
// sandboxAdmissible refuses what would ask for them.
func enterSandbox(*wire.Settings) error { return nil }
func enterSandboxAhead() error          { return nil }

// withSandbox is never called: sandboxAdmissible refuses what would ask
// for it.
func withSandbox([]int, sandbox.Group, func()) error { return errors.ErrUnsupported }
