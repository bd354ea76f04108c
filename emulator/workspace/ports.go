package workspace

// The ports apps listen on. An app takes a port number ($DATABRICKS_APP_PORT), not a listener, so the workspace finds
// a free port, lets go of it and hands the number over; the app binds it a moment later, or a minute later for a slow
// start. In between the kernel holds the port free and may offer it again: to the next deployment, whose app then
// fails to bind while its wait for "listening" connects to the first app and succeeds, two proxies in front of one
// process; or to a listener of the workspace's own. portReservations closes that gap for the workspaces of this
// process: a port given to an app is neither given to another app nor listened on by a workspace until that app has
// exited. Anything else (another process, FreePort's other callers) can still take it meanwhile; only handing the app
// a listener, which apps do not take, would stop that.

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
)

// maxPortTries bounds the search for a port that is free and not reserved. Reserved ports are the few of the apps
// starting or running, so a free port is almost always found at once.
const maxPortTries = 100

// portReservations are the ports given to apps that have not exited yet.
type portReservations struct {
	mu       sync.Mutex // held while a port is chosen or listened on, so the two never pick the same one
	reserved map[int]bool
	free     func() (int, error)                     // a port free right now: FreePort, except in tests
	listenOn func(addr string) (net.Listener, error) // net.Listen on TCP, except in tests
}

func newPortReservations(free func() (int, error)) *portReservations {
	return &portReservations{reserved: map[int]bool{}, free: free,
		listenOn: func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }}
}

// appPorts are the reservations every workspace of this process shares: ports belong to the machine, and a test
// binary runs many workspaces at once.
var appPorts = newPortReservations(FreePort)

// FreePort returns a TCP port free on 127.0.0.1 right now, for servers that take a port number rather than a
// listener (the SDK's U2M callback, an app's DATABRICKS_APP_PORT). Another caller may be given it too before it is
// used: the apps a workspace starts get theirs through portReservations, which never gives one out twice.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// reserve returns a port free on 127.0.0.1 that no app of this process holds or is about to bind, and keeps it for
// the caller's app until release.
func (r *portReservations) reserve() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range maxPortTries {
		port, err := r.free()
		if err != nil {
			return 0, err
		}
		if !r.reserved[port] {
			r.reserved[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port for an app: the %d ports the system offered are all kept for apps "+
		"starting or running", maxPortTries)
}

// keep reserves a given port: the workspace's own while it is down (Down), so that no app is given it meanwhile.
func (r *portReservations) keep(port int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reserved[port] = true
}

// release gives back a port reserve returned, once the app that got it has exited, or one kept.
func (r *portReservations) release(port int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reserved, port)
}

// listen listens on addr, a host:port; with port 0, on a free port that is not kept for an app.
func (r *portReservations) listen(addr string) (net.Listener, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port != "0" {
		return r.listenOn(addr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for range maxPortTries {
		ln, err := r.listenOn(addr)
		if err != nil || !r.reserved[ln.Addr().(*net.TCPAddr).Port] {
			return ln, err
		}
		_ = ln.Close() // an app is about to bind this one
	}
	return nil, fmt.Errorf("listen on %s: the %d ports the system offered are all kept for apps", addr, maxPortTries)
}

// portTaken adds to a listen error for a fixed port that another program holds how to choose another: where the
// model sets it (fix), and that port 0 picks a free one.
func portTaken(err error, fix string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w\nanother program listens there (an emulator still running?): stop it, or choose another "+
			"port: %s (0 picks a free one)", err, fix)
	}
	return err
}
