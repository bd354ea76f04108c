package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// load is one run of the load generator: n requests from c workers over keep-alive loopback connections.
type load struct {
	requests    int
	concurrency int
}

// loadResult is what a run measured.
type loadResult struct {
	elapsed  time.Duration
	errors   int64
	p50, p99 time.Duration
}

func (r loadResult) rps(n int) float64 { return float64(n) / r.elapsed.Seconds() }

// run sends GET url with header to completion. A request fails on a transport error or a status other than 200.
func (l load) run(ctx context.Context, url string, header http.Header) (loadResult, error) {
	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: l.concurrency,
		MaxConnsPerHost:     l.concurrency,
	}}
	defer client.CloseIdleConnections()

	var next, errs atomic.Int64
	latencies := make([]time.Duration, l.requests)
	var wg sync.WaitGroup
	start := time.Now()
	for range l.concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(l.requests) || ctx.Err() != nil {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header = header.Clone()
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				latencies[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res := loadResult{elapsed: time.Since(start), errors: errs.Load()}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	slices.Sort(latencies)
	res.p50 = latencies[len(latencies)/2]
	res.p99 = latencies[len(latencies)*99/100]
	return res, nil
}
