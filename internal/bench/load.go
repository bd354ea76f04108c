package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// load is one run of the load generator: c workers, each on its own keep-alive loopback connection, sending
// requests for a fixed time, so that a slow target gets as long a measurement as a fast one.
//
// The generator shares the cores with the servers it measures, so the less it costs, the less it flattens their
// differences in throughput (server CPU per request is measured apart, and does not depend on it). It works as wrk
// does: each worker writes the same request, encoded once, and reads the answer with as little parsing as checking
// it takes (status line, Content-Length, the body), into buffers it reuses: no allocation per request.
type load struct {
	duration    time.Duration
	concurrency int
}

// loadResult is what a run measured.
type loadResult struct {
	requests int64
	errors   int64
	firstErr error // what the first failed request got
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// run sends GET url with header until the duration is over. A request fails on a connection error, a status other
// than 200, or a body without want in it; the worker then connects again.
func (l load) run(ctx context.Context, url string, header http.Header, want string) (loadResult, error) {
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
	var firstErr error
	var once sync.Once
	fail := func(err error) {
		errs.Add(1)
		once.Do(func() { firstErr = err })
	}
	perWorker := make([][]time.Duration, l.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(l.duration)
	for w := range l.concurrency {
		wg.Go(func() {
			c := checker{want: []byte(want)}
			var conn net.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			latencies := make([]time.Duration, 0, 4096)
			t0 := time.Now()
			for t0.Before(deadline) && ctx.Err() == nil {
				if conn == nil {
					var d net.Dialer
					nc, err := d.DialContext(ctx, "tcp", req.URL.Host)
					if err != nil {
						fail(err)
						requests.Add(1)
						time.Sleep(time.Millisecond)
						t0 = time.Now()
						continue
					}
					conn = nc
					c.br = bufio.NewReaderSize(conn, 16<<10)
				}
				keep, err := c.roundTrip(conn, raw)
				t1 := time.Now()
				latencies = append(latencies, t1.Sub(t0))
				t0 = t1
				requests.Add(1)
				if err != nil {
					fail(err)
				}
				if !keep {
					conn.Close()
					conn = nil
				}
			}
			perWorker[w] = latencies
		})
	}
	wg.Wait()
	res := loadResult{requests: requests.Load(), errors: errs.Load(), firstErr: firstErr, elapsed: time.Since(start)}
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

// checker reads the answers on one connection.
type checker struct {
	br   *bufio.Reader
	body []byte // reused for every answer
	want []byte
}

var (
	errStatus  = errors.New("status is not 200")
	errNoBody  = errors.New("answer without Content-Length or chunked encoding")
	errBadBody = errors.New("the body does not hold the expected text")
)

// roundTrip writes one encoded request and reads its answer: an error for anything but a 200 whose body holds
// c.want, and keep when the connection may carry the next request.
func (c *checker) roundTrip(conn net.Conn, raw []byte) (keep bool, err error) {
	if _, err := conn.Write(raw); err != nil {
		return false, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	status := ""
	if !statusOK(line) {
		status = string(bytes.TrimSpace(line)) // line is only valid until the next read
	}
	length, chunked, keep := -1, false, true
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		name, value, found := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		if !found {
			break // the blank line that ends the header
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return false, fmt.Errorf("Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked: // none of the servers measured sends it for these small answers; read it the plain way
		if c.body, err = io.ReadAll(httputil.NewChunkedReader(c.br)); err == nil {
			err = skipTrailer(c.br)
		}
	case length >= 0:
		c.body = slices.Grow(c.body[:0], length)[:length]
		_, err = io.ReadFull(c.br, c.body)
	default:
		return false, errNoBody
	}
	switch {
	case err != nil:
		return false, err
	case status != "":
		return keep, fmt.Errorf("%w: %s", errStatus, status)
	case !bytes.Contains(c.body, c.want):
		return keep, fmt.Errorf("%w (%q): %.200s", errBadBody, c.want, c.body)
	}
	return keep, nil
}

// skipTrailer reads the trailer section that ends a chunked body, up to and including its blank line.
func skipTrailer(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil || len(bytes.TrimRight(line, "\r\n")) == 0 {
			return err
		}
	}
}

// statusOK reports whether an HTTP/1.x status line ("HTTP/1.1 200 OK\r\n", the reason phrase optional) says 200.
func statusOK(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/1."))
	if !ok || len(rest) < 5 {
		return false
	}
	code := rest[1:] // past the minor version digit
	return bytes.HasPrefix(code, []byte(" 200")) && (len(code) == 4 || code[4] == ' ' || code[4] == '\r' || code[4] == '\n')
}
