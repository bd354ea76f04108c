package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// maxRepeat bounds --repeat: enough to measure, not enough to become a load test of someone's app.
const maxRepeat = 100_000

// repeatSummary is --repeat's result. Latencies are per request as the caller saw it: retries included, and the
// token fetch in the first one.
type repeatSummary struct {
	Requests int            `json:"requests"`
	Statuses map[string]int `json:"statuses"`
	P50ms    float64        `json:"p50_ms"`
	P99ms    float64        `json:"p99_ms"`
	Method   string         `json:"method"`
	URL      string         `json:"url"`
	Mode     Mode           `json:"mode"`
	AuthType string         `json:"auth_type"`
}

// repeat sends the same request n times in a row over the session's one client and one Config, so every request
// after the first reuses the token, and prints a one-line summary. The first failure stops it and is reported as
// usual, saying which request it was.
func (s *session) repeat(ctx context.Context, n int, method, path string, body []byte) error {
	out := s.env.out
	latencies := make([]time.Duration, 0, n)
	statuses := map[int]int{}
	var u string
	for i := range n {
		start := time.Now()
		resp, err := s.send(ctx, method, path, body)
		if err != nil {
			f := s.explain(ctx, err, s.target)
			f.Summary = fmt.Sprintf("request %d of %d: %s", i+1, n, f.Summary)
			return f
		}
		latencies = append(latencies, time.Since(start))
		statuses[resp.Status]++
		u = resp.URL
	}
	sum := repeatSummary{Requests: n, Statuses: map[string]int{}, P50ms: percentileMS(latencies, 50),
		P99ms: percentileMS(latencies, 99), Method: method, URL: u, Mode: s.creds.mode, AuthType: s.creds.authType()}
	codes := make([]int, 0, len(statuses))
	for code, count := range statuses {
		sum.Statuses[strconv.Itoa(code)] = count
		codes = append(codes, code)
	}
	slices.Sort(codes)
	counts := make([]string, len(codes))
	for i, code := range codes {
		counts[i] = fmt.Sprintf("%d×%d", statuses[code], code)
	}
	out.result(fmt.Sprintf("%d requests %s %s: %s, p50 %.3f ms, p99 %.3f ms (%s mode, auth type %s)",
		n, method, u, strings.Join(counts, " "), sum.P50ms, sum.P99ms, sum.Mode, sum.AuthType), sum)
	return nil
}

// repeatFlag is --repeat, of call and whoami.
func repeatFlag(fs *pflag.FlagSet, n *int) {
	fs.IntVar(n, "repeat", 0, "send the request N times in a row over one token, print count, statuses and p50/p99 latency")
}

// checkRepeat checks --repeat when it was given.
func checkRepeat(n int, set bool) error {
	if set && (n < 1 || n > maxRepeat) {
		return fmt.Errorf("--repeat must be between 1 and %d", maxRepeat)
	}
	return nil
}

// percentileMS is the nearest-rank percentile p of ds in milliseconds, to the microsecond.
func percentileMS(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := int(math.Ceil(float64(p) / 100 * float64(len(sorted))))
	d := sorted[max(rank, 1)-1]
	return float64(d.Microseconds()) / 1000
}
