package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A figure fails the bench only when it misses its goal by more than its own range: a miss within the range may be
// the machine's noise.
func TestFigureVerdicts(t *testing.T) {
	tests := []struct {
		name    string
		value   spread
		goal    goal
		verdict string
		failed  bool
	}{
		{"met", spread{0.95, 0.90, 1.00}, atLeast(0.9), "ok", false},
		{"missed within the range", spread{0.85, 0.75, 0.95}, atLeast(0.9), "missed, within its range", false},
		{"missed beyond the range", spread{0.80, 0.78, 0.82}, atLeast(0.9), "MISSED", true},
		{"at most, met", spread{1.2, 1.1, 1.4}, atMost(1.3), "ok", false},
		{"at most, missed within", spread{1.4, 1.2, 1.7}, atMost(1.3), "missed, within its range", false},
		{"a count, missed", exact(1), atMost(0), "MISSED", true},
		{"reported only", spread{5, 1, 9}, reported, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := figure{name: tt.name, value: tt.value, goal: tt.goal}
			assert.Equal(t, tt.verdict, f.verdict())
			assert.Equal(t, tt.failed, f.failed())
		})
	}
}

func TestSpreadOf(t *testing.T) {
	assert.Equal(t, spread{median: 2, lo: 1, hi: 9}, spreadOf([]float64{9, 1, 2}))
	assert.Equal(t, spread{median: 2.5, lo: 1, hi: 9}, spreadOf([]float64{9, 1, 2, 3}))
}

// The process's CPU time grows as it works. /proc counts it in clock ticks (10 ms), so the test works until a tick
// has passed rather than for a fixed amount of work, which a fast machine finishes within one.
func TestCPUTime(t *testing.T) {
	start, err := cpuTime("self")
	require.NoError(t, err)
	busy := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i := range 1_000_000 {
			busy += i
		}
		d, err := cpuTime("self")
		require.NoError(t, err)
		if d > start {
			return
		}
		require.True(t, time.Now().Before(deadline), "no CPU time counted in 10 s of work (%d)", busy)
	}
}
