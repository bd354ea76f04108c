package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// load is one run of wrk (https://github.com/wg/wrk, Debian's package): one thread driving c keep-alive loopback
// connections, each with one request in flight at a time, for a fixed time, so that a slow target gets as long a
// measurement as a fast one. wrk is written for this: one thread drives every connection through epoll and sends
// the same request bytes each time, so the load costs little of the cores the servers share with it.
type load struct {
	duration    time.Duration // whole seconds, as wrk's -d takes it (checked once, as --duration, in bench.go)
	concurrency int
	dir         string // where the run's Lua script is written
}

// loadResult is what a run measured.
type loadResult struct {
	requests  int64 // answered, whatever their status
	badStatus int64 // answers with a status of 400 or more
	errors    int64 // those, and requests that got no answer
	failures  string
	elapsed   time.Duration
	p50, p99  time.Duration
	cpu       time.Duration // wrk's own CPU time, user and system
}

// rps is the rate of answered requests that did not fail: a failure is not throughput, and a generator retrying a
// dead target would otherwise report it as fast.
func (r loadResult) rps() float64 {
	return float64(r.requests-r.badStatus) / r.elapsed.Seconds()
}

// answerTimeout is how long wrk waits for an answer before it counts the request as timed out.
const answerTimeout = 5 * time.Second

// wrkReport is the line the script's done() writes on stderr: wrk's summary, latencies in microseconds.
type wrkReport struct {
	Requests   int64 `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Status     int64 `json:"status"`
	Timeout    int64 `json:"timeout"`
	P50US      int64 `json:"p50_us"`
	P99US      int64 `json:"p99_us"`
}

// reportScript is the end of every run's Lua script: done() is wrk's hook for the summary, written as one JSON line.
const reportScript = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// script is the Lua script of a run: the request's headers, then the report. The headers go in the script, which
// only this process can read, rather than on wrk's command line, which any local process can: they hold tokens.
func script(header http.Header) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(header)) {
		fmt.Fprintf(&b, "wrk.headers[%s] = %s\n", luaString(name), luaString(strings.Join(header[name], ", ")))
	}
	b.WriteString(reportScript)
	return b.String()
}

// luaString is s as a Lua string literal: every byte that is not printable ASCII, and the quote and backslash,
// written as a decimal escape.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := range len(s) {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			fmt.Fprintf(&b, "\\%03d", c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

// parseReport reads the report line among what wrk wrote on stderr.
func parseReport(stderr []byte) (loadResult, error) {
	for line := range bytes.Lines(stderr) {
		if !bytes.HasPrefix(line, []byte(`{"requests":`)) {
			continue
		}
		var r wrkReport
		if err := json.Unmarshal(line, &r); err != nil {
			return loadResult{}, fmt.Errorf("wrk's report %q: %w", line, err)
		}
		if r.DurationUS <= 0 {
			return loadResult{}, fmt.Errorf("wrk's report %q: no duration", line)
		}
		res := loadResult{requests: r.Requests, elapsed: time.Duration(r.DurationUS) * time.Microsecond,
			p50: time.Duration(r.P50US) * time.Microsecond, p99: time.Duration(r.P99US) * time.Microsecond,
			badStatus: r.Status, errors: r.Status + r.Connect + r.Read + r.Write + r.Timeout}
		var kinds []string
		for _, k := range []struct {
			name string
			n    int64
		}{{"status ≥ 400", r.Status}, {"connect", r.Connect}, {"read", r.Read}, {"write", r.Write}, {"timeout", r.Timeout}} {
			if k.n > 0 {
				kinds = append(kinds, fmt.Sprintf("%s: %d", k.name, k.n))
			}
		}
		res.failures = strings.Join(kinds, ", ")
		return res, nil
	}
	return loadResult{}, errors.New("wrk wrote no report")
}

// run sends GET url with header on l.concurrency connections for l.duration with wrk -t1. wrk counts a request as
// failed when the answer's status is 400 or more or none comes; measure checks the body of an answer before each run.
func (l load) run(ctx context.Context, url string, header http.Header) (loadResult, error) {
	f, err := os.CreateTemp(l.dir, "wrk-*.lua")
	if err != nil {
		return loadResult{}, err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(script(header))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return loadResult{}, err
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t1", fmt.Sprintf("-c%d", l.concurrency),
		fmt.Sprintf("-d%ds", int(l.duration/time.Second)), "--timeout", fmt.Sprintf("%ds", int(answerTimeout/time.Second)),
		"-s", f.Name(), url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return loadResult{}, errWrkMissing
		}
		return loadResult{}, fmt.Errorf("wrk %s: %w\n%s%s", url, err, stdout.Bytes(), stderr.Bytes())
	}
	res, err := parseReport(stderr.Bytes())
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk %s: %w\n%s%s", url, err, stdout.Bytes(), stderr.Bytes())
	}
	if res.requests == 0 {
		return res, fmt.Errorf("wrk %s: no request answered in %s\n%s", url, l.duration, stderr.Bytes())
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, nil
}

var errWrkMissing = errors.New("wrk is not installed: make bench installs Debian's wrk as root; " +
	"otherwise install it (Debian: sudo apt-get install -y wrk) and run make bench again")

// checkWrk says what to do when wrk is not there, before the bench builds and starts anything.
func checkWrk() error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errWrkMissing
	}
	return nil
}
