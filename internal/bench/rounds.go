package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// target is one row of the load table: a URL, the headers every request carries, a text every answer's body must hold,
// and the server processes whose CPU time the requests cost (the app, or a proxy and the app behind it).
type target struct {
	name    string
	url     string
	header  http.Header
	want    string
	servers []*process
}

// sample is what one load run against a target measured.
type sample struct {
	rps           float64
	cpuPerReq     time.Duration // server CPU time per request, all the target's servers together
	loadCPUPerReq time.Duration // wrk's
	errors        int64
	failures      string // how many failed, of which kind
	p50, p99      time.Duration
}

// measureRounds loads every target of every group once per round, rounds times, in roundOrder, and returns each
// target's samples by round.
func measureRounds(ctx context.Context, groups [][]target, rounds int, l load, progress func(string, ...any)) (map[string][]sample, error) {
	samples := map[string][]sample{}
	for round := range rounds {
		order := roundOrder(groups, round)
		progress("round %d of %d: %d loads of %s at concurrency %d", round+1, rounds, len(order), l.duration, l.concurrency)
		for _, t := range order {
			s, err := measure(ctx, t, l)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			if s.errors > 0 {
				progress("%s: %d requests failed (%s)", t.name, s.errors, s.failures)
			}
			samples[t.name] = append(samples[t.name], s)
		}
	}
	return samples, nil
}

// roundOrder is the order of one round's loads. The groups take turns to go first, one more each round; within a
// group the targets run back to back, forwards in even rounds and backwards in odd ones. On a shared machine whatever slows one load then falls alike on the two targets of a ratio
// (each ratio is taken within a round), and neither always runs first.
func roundOrder(groups [][]target, round int) []target {
	var order []target
	for i := range groups {
		g := slices.Clone(groups[(i+round)%len(groups)])
		if round%2 == 1 {
			slices.Reverse(g)
		}
		order = append(order, g...)
	}
	return order
}

// measure checks one answer of t, then runs one load against it and reads its servers' CPU time around the load.
func measure(ctx context.Context, t target, l load) (sample, error) {
	if err := t.check(ctx); err != nil {
		return sample{}, err
	}
	cpu := func() (time.Duration, error) {
		var total time.Duration
		for _, p := range t.servers {
			d, err := p.cpu()
			if err != nil {
				return 0, err
			}
			total += d
		}
		return total, nil
	}
	before, err := cpu()
	if err != nil {
		return sample{}, err
	}
	res, err := l.run(ctx, t.url, t.header)
	if err != nil {
		return sample{}, err
	}
	after, err := cpu()
	if err != nil {
		return sample{}, err
	}
	s := sample{rps: res.rps(), errors: res.errors, failures: res.failures, p50: res.p50, p99: res.p99}
	if n := time.Duration(res.requests); n > 0 {
		s.cpuPerReq, s.loadCPUPerReq = (after-before)/n, res.cpu/n
	}
	return s, nil
}

// check sends one request to t and fails unless the answer is a 200 whose body holds t.want: wrk counts statuses
// of 400 and more as failures but reads no body.
func (t target) check(ctx context.Context) error {
	body, err := get(ctx, t.url, t.header)
	if err != nil {
		return err
	}
	if !strings.Contains(string(body), t.want) {
		return fmt.Errorf("GET %s: the answer does not hold %s: %.200s", t.url, t.want, body)
	}
	return nil
}

// spread is a median with the range it was taken from.
type spread struct{ median, lo, hi float64 }

func spreadOf(xs []float64) spread {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	mid := xs[n/2]
	if n%2 == 0 {
		mid = (xs[n/2-1] + xs[n/2]) / 2
	}
	return spread{median: mid, lo: xs[0], hi: xs[n-1]}
}

// ratios divides a's figure by b's, round by round.
func ratios(a, b []sample, f func(sample) float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = f(a[i]) / f(b[i])
	}
	return out
}

func rpsOf(s sample) float64 { return s.rps }
func cpuOf(s sample) float64 { return float64(s.cpuPerReq) }

func collect(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}
