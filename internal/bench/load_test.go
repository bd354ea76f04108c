package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The script sets each header once, its values joined, as Lua literals that hold any byte.
func TestScriptSetsTheHeaders(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer a.b-c_d"}, "X-Forwarded-Email": {`dev@example.com`},
		"X-Odd": {"say \"hi\"\\\n", "twice"}}
	got := script(h)
	assert.Contains(t, got, `wrk.headers["Authorization"] = "Bearer a.b-c_d"`+"\n")
	assert.Contains(t, got, `wrk.headers["X-Forwarded-Email"] = "dev@example.com"`+"\n")
	assert.Contains(t, got, `wrk.headers["X-Odd"] = "say \034hi\034\092\010, twice"`+"\n")
	assert.Contains(t, got, "done = function(summary, latency, requests)")
}

func TestLuaString(t *testing.T) {
	assert.Equal(t, `""`, luaString(""))
	assert.Equal(t, `"plain text: 1+1"`, luaString("plain text: 1+1"))
	assert.Equal(t, `"\034\092\000\127\195\169"`, luaString("\"\\\x00\x7fé"))
}

// The report line is found among wrk's other output; every kind of failure counts, and names itself.
func TestParseReport(t *testing.T) {
	stderr := "unable to connect to 127.0.0.1:1 Connection refused\n" +
		`{"requests":1000,"duration_us":2000000,"connect":0,"read":2,"write":0,"status":8,"timeout":1,"p50_us":310,"p99_us":2200}` + "\n"
	res, err := parseReport([]byte(stderr))
	require.NoError(t, err)
	assert.Equal(t, int64(1000), res.requests)
	assert.Equal(t, int64(11), res.errors)
	assert.Equal(t, "status ≥ 400: 8, read: 2, timeout: 1", res.failures)
	assert.Equal(t, 2*time.Second, res.elapsed)
	assert.Equal(t, 310*time.Microsecond, res.p50)
	assert.Equal(t, 2200*time.Microsecond, res.p99)
	assert.InDelta(t, 496, res.rps(), 0.01, "failed requests are not throughput")

	clean, err := parseReport([]byte(`{"requests":10,"duration_us":1000000,"connect":0,"read":0,"write":0,"status":0,"timeout":0,"p50_us":1,"p99_us":2}`))
	require.NoError(t, err)
	assert.Zero(t, clean.errors)
	assert.Empty(t, clean.failures)

	_, err = parseReport([]byte("Running 2s test @ http://127.0.0.1:8000/\n"))
	assert.ErrorContains(t, err, "no report")
	_, err = parseReport([]byte(`{"requests":10,"duration_us":0}`))
	assert.ErrorContains(t, err, "no duration")
}
