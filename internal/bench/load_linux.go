package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"time"
)

// loadConn is one connection of a run, with its one request in flight.
type loadConn struct {
	fd     int // -1 while not connected
	sent   time.Time
	answer []byte // what has arrived of the answer so far; reused for every answer
}

// run sends GET url with header on l.concurrency connections until the duration is over. A request fails on a
// connection error, a status other than 200, or a body without want in it; its connection is then replaced.
//
// One locked OS thread drives every connection through epoll, as wrk does: per request, a write, a read and a share
// of an epoll_wait, and at most one core, as `wrk -t1`. A goroutine per net.Conn costs more here (reads that find
// nothing yet, goroutines woken across threads): CPU the servers then lack, on two shared cores.
func (l load) run(ctx context.Context, rawURL string, header http.Header, want string) (loadResult, error) {
	raw, hostPort, err := encodeRequest(rawURL, header)
	if err != nil {
		return loadResult{}, err
	}
	addr, err := net.ResolveTCPAddr("tcp4", hostPort)
	if err != nil {
		return loadResult{}, err
	}
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return loadResult{}, fmt.Errorf("epoll: %w", err)
	}
	defer syscall.Close(epfd)

	var res loadResult
	fail := func(err error) {
		res.errors++
		if res.firstErr == nil {
			res.firstErr = err
		}
	}
	conns := make([]*loadConn, l.concurrency)
	for i := range conns {
		conns[i] = &loadConn{fd: -1, answer: make([]byte, 0, 16<<10)}
	}
	closeConn := func(c *loadConn) {
		if c.fd >= 0 {
			_ = syscall.Close(c.fd) // closing also takes it out of the epoll set
			c.fd = -1
		}
	}
	defer func() {
		for _, c := range conns {
			closeConn(c)
		}
	}()
	// send writes the request on c, connecting it first if it is not; a failure counts as a failed request.
	send := func(i int, c *loadConn, now time.Time) {
		c.sent, c.answer = now, c.answer[:0]
		if c.fd < 0 {
			fd, err := dial(epfd, sa, i)
			if err != nil {
				res.requests++
				fail(err)
				return
			}
			c.fd = fd
		}
		if n, err := syscall.Write(c.fd, raw); err != nil || n != len(raw) {
			res.requests++
			fail(fmt.Errorf("write: %d of %d bytes: %v", n, len(raw), err))
			closeConn(c)
		}
	}

	start := time.Now()
	deadline := start.Add(l.duration)
	for i, c := range conns {
		send(i, c, start)
	}
	wantBytes := []byte(want)
	latencies := make([]time.Duration, 0, 64<<10)
	events := make([]syscall.EpollEvent, l.concurrency)
	for ctx.Err() == nil {
		n, err := syscall.EpollWait(epfd, events, 100) // ms: wake up now and then to check ctx and reconnect
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return res, fmt.Errorf("epoll_wait: %w", err)
		}
		now := time.Now()
		for _, ev := range events[:max(n, 0)] {
			i := int(ev.Fd) // the connection's index, not its fd (see dial)
			c := conns[i]
			if c.fd < 0 {
				continue
			}
			done, keep, err := c.read(wantBytes)
			if !done {
				continue // the answer is not all here yet
			}
			res.requests++
			latencies = append(latencies, now.Sub(c.sent))
			if err != nil {
				fail(err)
			}
			if !keep {
				closeConn(c)
			}
			if now.Before(deadline) {
				send(i, c, now)
			} else {
				closeConn(c)
			}
		}
		inFlight := 0
		for i, c := range conns {
			switch {
			case c.fd >= 0:
				inFlight++
			case now.Before(deadline): // its connection failed to open or was closed: try again
				send(i, c, now)
			}
		}
		if !now.Before(deadline) && (inFlight == 0 || now.After(deadline.Add(answerWait))) {
			for _, c := range conns {
				if c.fd >= 0 {
					res.requests++
					fail(fmt.Errorf("%w within %s of the end of the run", errNoAnswer, answerWait))
				}
			}
			break
		}
	}
	res.elapsed = time.Since(start)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return summarise(res, latencies, rawURL, l.duration)
}

// read takes what has arrived on c. Once the whole answer is there it returns done, whether the connection may carry
// the next request, and the answer's error (see parseAnswer); a connection error is done with an error too.
func (c *loadConn) read(want []byte) (done, keep bool, err error) {
	for {
		if len(c.answer) == cap(c.answer) {
			c.answer = append(c.answer, 0)[:len(c.answer)]
		}
		got, err := syscall.Read(c.fd, c.answer[len(c.answer):cap(c.answer)])
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return false, true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return true, false, fmt.Errorf("read: %w", err)
		case got == 0:
			return true, false, fmt.Errorf("%w: the server closed the connection", errNoAnswer)
		}
		c.answer = c.answer[:len(c.answer)+got]
		n, keep, err := parseAnswer(c.answer, want)
		switch {
		case n == 0:
			continue // more may have arrived; if not, the next read says EAGAIN
		case n < len(c.answer) && err == nil:
			return true, false, fmt.Errorf("%w: %d bytes past the answer", errFraming, len(c.answer)-n)
		}
		return true, keep, err
	}
}

// dial opens a blocking connection (loopback connects at once), then makes it non-blocking and adds it to the epoll
// set with the connection's index as its event data.
func dial(epfd int, sa *syscall.SockaddrInet4, index int) (int, error) {
	fd, err := connect(sa)
	if err != nil {
		return -1, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = syscall.Close(fd)
		}
	}()
	if err := syscall.SetNonblock(fd, true); err != nil {
		return -1, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		return -1, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(index)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return -1, fmt.Errorf("epoll_ctl: %w", err)
	}
	ok = true
	return fd, nil
}

// connect opens a TCP connection to sa, trying again if a signal interrupts it (the Go runtime sends some).
func connect(sa *syscall.SockaddrInet4) (int, error) {
	for {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("socket: %w", err)
		}
		err = syscall.Connect(fd, sa)
		if err == nil {
			return fd, nil
		}
		_ = syscall.Close(fd)
		if !errors.Is(err, syscall.EINTR) {
			return -1, fmt.Errorf("connect: %w", err)
		}
	}
}
