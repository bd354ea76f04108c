package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// load is one run of the load generator: c workers, each on its own keep-alive loopback connection, sending
// requests for a fixed time, so that a slow target gets as long a measurement as a fast one.
//
// Each worker writes the same request, encoded once, and reads each response with http.ReadResponse: a few
// microseconds of this process's CPU per request, where net/http's client costs several times more. The load
// generator shares the cores with the servers it measures, so the less it costs, the less it flattens their
// differences in throughput. (Server CPU per request is measured apart, and does not depend on it.)
type load struct {
	duration    time.Duration
	concurrency int
}

// loadResult is what a run measured.
type loadResult struct {
	requests int64
	errors   int64
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// run sends GET url with header until the duration is over. A request fails on a connection error or a status
// other than 200; the worker then connects again.
func (l load) run(ctx context.Context, url string, header http.Header) (loadResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return loadResult{}, err
	}
	req.Header = header.Clone()
	var encoded bytes.Buffer
	if err := req.Write(&encoded); err != nil {
		return loadResult{}, err
	}
	raw := encoded.Bytes()

	var requests, errs atomic.Int64
	perWorker := make([][]time.Duration, l.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(l.duration)
	for w := range l.concurrency {
		wg.Go(func() {
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if conn == nil {
					var d net.Dialer
					c, err := d.DialContext(ctx, "tcp", req.URL.Host)
					if err != nil {
						errs.Add(1)
						requests.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					conn, br = c, bufio.NewReader(c)
				}
				ok, keep := roundTrip(conn, br, raw, req)
				perWorker[w] = append(perWorker[w], time.Since(t0))
				requests.Add(1)
				if !ok {
					errs.Add(1)
				}
				if !keep {
					conn.Close()
					conn = nil
				}
			}
		})
	}
	wg.Wait()
	res := loadResult{requests: requests.Load(), errors: errs.Load(), elapsed: time.Since(start)}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	latencies := slices.Concat(perWorker...)
	if len(latencies) == 0 {
		return res, fmt.Errorf("GET %s: no request completed in %s", url, l.duration)
	}
	slices.Sort(latencies)
	res.p50 = latencies[len(latencies)/2]
	res.p99 = latencies[len(latencies)*99/100]
	return res, nil
}

// roundTrip writes one encoded request and reads its response: ok for a 200, keep when the connection may carry
// the next request.
func roundTrip(conn net.Conn, br *bufio.Reader, raw []byte, req *http.Request) (ok, keep bool) {
	if _, err := conn.Write(raw); err != nil {
		return false, false
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return false, false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK, err == nil && !resp.Close
}
