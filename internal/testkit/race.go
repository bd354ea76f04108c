//go:build race

package testkit

// RaceEnabled reports whether this test binary runs with the race detector.
const RaceEnabled = true
