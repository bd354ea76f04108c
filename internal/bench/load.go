package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// load is one run of the load generator: c keep-alive loopback connections, each with one request in flight at a
// time, sending requests for a fixed time, so that a slow target gets as long a measurement as a fast one.
//
// The generator shares the cores with the servers it measures, so the less it costs, the less it flattens their
// differences in throughput (server CPU per request is measured apart, and does not depend on it). It works as
// `wrk -t1` does (load_linux.go): one thread drives every connection through epoll, writes the same request bytes,
// encoded once, and parses no more of each answer than checking it takes (status line, Content-Length, the body).
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

// rps is the rate of answered requests: a failure (a refused connection, a wrong answer) is not throughput, and a
// generator retrying a dead target would otherwise report it as fast.
func (r loadResult) rps() float64 { return float64(r.requests-r.errors) / r.elapsed.Seconds() }

// answerWait is how long a run waits past its duration for the answers still in flight; those that do not come count
// as failed.
const answerWait = 5 * time.Second

// encodeRequest is GET url with header, as the bytes sent on the wire, and the host:port to send them to.
func encodeRequest(rawURL string, header http.Header) (raw []byte, hostPort string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" {
		return nil, "", fmt.Errorf("load: %q is not an http:// URL", rawURL)
	}
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header = header.Clone()
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		return nil, "", err
	}
	return b.Bytes(), u.Host, nil
}

// summarise turns what the connections recorded into the run's result.
func summarise(res loadResult, latencies []time.Duration, rawURL string, d time.Duration) (loadResult, error) {
	if len(latencies) == 0 {
		return res, fmt.Errorf("GET %s: no request completed in %s", rawURL, d)
	}
	slices.Sort(latencies)
	res.p50 = latencies[len(latencies)/2]
	res.p99 = latencies[len(latencies)*99/100]
	return res, nil
}

var (
	errStatus    = errors.New("status is not 200")
	errBadBody   = errors.New("the body does not hold the expected text")
	errFraming   = errors.New("an answer the load generator does not read")
	errNoAnswer  = errors.New("no answer")
	maxAnswerLen = 1 << 20
)

var (
	crlf         = []byte("\r\n")
	endOfHeader  = []byte("\r\n\r\n")
	headerColon  = []byte(":")
	httpVersion1 = []byte("HTTP/1.")
)

// parseAnswer reads the HTTP/1.x answer at the start of b. While b does not hold all of it, n is 0 and err nil;
// otherwise n is its length, keep tells whether the connection may carry another request, and err is set for
// anything but a 200 whose body holds want. An answer without Content-Length (chunked, or up to the connection's
// end) is errFraming: none of the servers measured sends one for these small answers, and counting it as failed is
// safer than reading it wrong.
func parseAnswer(b, want []byte) (n int, keep bool, err error) {
	end := bytes.Index(b, endOfHeader)
	if end < 0 {
		if len(b) > maxAnswerLen {
			return len(b), false, fmt.Errorf("%w: no end of header in %d bytes", errFraming, len(b))
		}
		return 0, true, nil
	}
	statusLine, fields, _ := bytes.Cut(b[:end+2], crlf)
	length, keep := -1, true
	for len(fields) > 0 {
		var line []byte
		line, fields, _ = bytes.Cut(fields, crlf)
		name, value, ok := bytes.Cut(line, headerColon)
		if !ok {
			return len(b), false, fmt.Errorf("%w: header line %q", errFraming, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 || length > maxAnswerLen {
				return len(b), false, fmt.Errorf("%w: Content-Length %q", errFraming, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return len(b), false, fmt.Errorf("%w: Transfer-Encoding %q", errFraming, value)
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	if length < 0 {
		return len(b), false, fmt.Errorf("%w: no Content-Length", errFraming)
	}
	bodyStart := end + len(endOfHeader)
	if len(b) < bodyStart+length {
		return 0, true, nil
	}
	body := b[bodyStart : bodyStart+length]
	switch {
	case !statusOK(statusLine):
		err = fmt.Errorf("%w: %s", errStatus, statusLine)
	case !bytes.Contains(body, want):
		err = fmt.Errorf("%w (%s): %.200s", errBadBody, want, body)
	}
	return bodyStart + length, keep, err
}

// statusOK reports whether an HTTP/1.x status line ("HTTP/1.1 200 OK", the reason phrase optional) says 200.
func statusOK(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	rest, ok := bytes.CutPrefix(line, httpVersion1)
	if !ok || len(rest) < 5 {
		return false
	}
	code := rest[1:] // past the minor version digit
	return bytes.HasPrefix(code, []byte(" 200")) && (len(code) == 4 || code[4] == ' ')
}
