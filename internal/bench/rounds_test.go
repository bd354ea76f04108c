package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRoundOrder: a proxy and its baseline run back to back in every round, in turns first; groups rotate.
func TestRoundOrder(t *testing.T) {
	named := func(names ...string) []target {
		ts := make([]target, len(names))
		for i, n := range names {
			ts[i].name = n
		}
		return ts
	}
	groups := [][]target{named("app", "bare", "fastapi"), named("emu", "plain"), named("emu-user", "plain-user")}
	names := func(ts []target) string {
		var out []string
		for _, t := range ts {
			out = append(out, t.name)
		}
		return strings.Join(out, " ")
	}
	assert.Equal(t, "app bare fastapi emu plain emu-user plain-user", names(roundOrder(groups, 0)))
	assert.Equal(t, "plain emu plain-user emu-user fastapi bare app", names(roundOrder(groups, 1)))
	assert.Equal(t, "emu-user plain-user app bare fastapi emu plain", names(roundOrder(groups, 2)))
	assert.Equal(t, "app bare fastapi emu plain emu-user plain-user", names(roundOrder(groups, 3*2)), "the cycle")
	assert.Len(t, groups[0], 3, "the groups themselves are left as they were")
	assert.Equal(t, "app", groups[0][0].name)
}
