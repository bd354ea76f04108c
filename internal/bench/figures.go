package main

import (
	"fmt"
	"io"
	"strings"
)

// goal is what a figure should reach: at least or at most a value, or nothing (reported only).
type goal struct {
	atLeast, atMost bool
	value           float64
}

func atLeast(v float64) goal { return goal{atLeast: true, value: v} }
func atMost(v float64) goal  { return goal{atMost: true, value: v} }

var reported = goal{}

func (g goal) String() string {
	switch {
	case g.atLeast:
		return "≥ " + trimFloat(g.value)
	case g.atMost:
		return "≤ " + trimFloat(g.value)
	}
	return "(reported)"
}

// figure is one line of the summary: a measured spread, what it should reach, and a note on how it was measured.
type figure struct {
	name   string
	value  spread
	digits int // decimals to print the value with
	goal   goal
	note   string
}

// shortfall is by how much the median misses the goal, or 0 when it meets it.
func (f figure) shortfall() float64 {
	switch {
	case f.goal.atLeast && f.value.median < f.goal.value:
		return f.goal.value - f.value.median
	case f.goal.atMost && f.value.median > f.goal.value:
		return f.value.median - f.goal.value
	}
	return 0
}

// failed reports a miss larger than the figure's own measured range: a miss within it may be the machine's noise
// (the same code measured again can land either side of the goal), one beyond it is not.
func (f figure) failed() bool {
	return f.shortfall() > f.value.hi-f.value.lo
}

func (f figure) verdict() string {
	switch {
	case f.goal == reported:
		return ""
	case f.shortfall() == 0:
		return "ok"
	case !f.failed():
		return "missed, within its range"
	}
	return "MISSED"
}

func (f figure) measured() string {
	v := f.value
	if v.lo == v.hi {
		return fmt.Sprintf("%.*f", f.digits, v.median)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", f.digits, v.median, f.digits, v.lo, f.digits, v.hi)
}

// exact is a figure measured once, such as a count: its range is the value itself.
func exact(v float64) spread { return spread{median: v, lo: v, hi: v} }

func printTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
}

func printFigures(w io.Writer, figures []figure) {
	rows := make([][]string, len(figures))
	for i, f := range figures {
		rows[i] = []string{f.name, f.measured(), f.goal.String(), f.verdict(), f.note}
	}
	printTable(w, []string{"figure", "median (range)", "goal", "", ""}, rows)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
