//go:build !race

package forkserver

// raceEnabled reports whether the binary was built with the race detector.
const raceEnabled = false
