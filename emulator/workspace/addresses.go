package workspace

// Where each app's proxy listens. On the platform every app has a host name of its own
// (<app>-<id>.<region>.databricksapps.com): a browser keeps each app's cookies to it, and a page of one app is
// another site to the next. The emulator gives each app's proxy a loopback address of its own, 127.0.0.2,
// 127.0.0.3, …, which every client reaches as it is. Host names under localhost would have done it for browsers
// and curl, but Go's resolver (so databricks-sdk-go and the CLI), Python's and Node's (glibc without
// nss-myhostname, as on Debian) do not resolve them. Linux routes the whole of 127.0.0.0/8 to the loopback
// interface; macOS routes only 127.0.0.1 unless aliases are added (sudo ifconfig lo0 alias 127.0.0.2 up), and there
// the proxies fall back to 127.0.0.1, each on a port of its own, which loses that isolation: the emulator says so.
//
// The workspace itself stays on 127.0.0.1: databricks-sdk-go takes an http:// host for U2M only there.

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// fallbackHost is where every proxy listens when this system has no other loopback address.
const fallbackHost = "127.0.0.1"

// appHost is the n-th app address: 127.0.0.2 for n = 1, … 127.0.0.254, then 127.0.1.1, and so on, never an address
// ending in .0 or .255.
func appHost(n int) string { return fmt.Sprintf("127.0.%d.%d", n/254, n%254+1) }

// listenAppProxy listens for an app's proxy, on want when the app had an address before (a restart: "host:port"),
// or on a loopback address none of the workspace's other apps has, on port (0 picks a free one). Callers hold m.mu.
func (m *appManager) listenAppProxy(want string, port int) (net.Listener, error) {
	if want != "" {
		ln, err := m.ports.listen(want)
		if host, wantPort, _ := net.SplitHostPort(want); err != nil && unassignable(err) && host != fallbackHost {
			m.warnLoopbackFallback(host, err)
			return m.ports.listen(net.JoinHostPort(fallbackHost, wantPort))
		}
		return ln, err
	}
	taken := map[string]bool{}
	for _, rec := range m.byName {
		taken[rec.proxy.host()] = true
	}
	for _, saved := range m.savedApps { // the apps a lasting workspace brings back next, at their addresses
		taken[saved.Host] = true
	}
	for n := 1; ; n++ {
		host := appHost(n)
		if m.loopbackFallback || n >= 254*254 {
			host = fallbackHost
		} else if taken[host] {
			continue
		}
		ln, err := m.ports.listen(net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil && unassignable(err) && host != fallbackHost {
			m.warnLoopbackFallback(host, err)
			continue // now with the fallback host
		}
		return ln, err
	}
}

// unassignable reports whether a listen failed because the address is not this system's (EADDRNOTAVAIL).
func unassignable(err error) bool { return errors.Is(err, syscall.EADDRNOTAVAIL) }

// warnLoopbackFallback switches the workspace's app proxies to 127.0.0.1 and says what that loses, once.
func (m *appManager) warnLoopbackFallback(host string, err error) {
	if m.loopbackFallback {
		return
	}
	m.loopbackFallback = true
	m.logger.Warn("this system has no loopback address but 127.0.0.1, so every app's proxy listens there on a port of "+
		"its own: a browser then sends each app the others' cookies and takes their pages for one site, which the "+
		"platform's host name per app prevents. On macOS, add addresses (sudo ifconfig lo0 alias 127.0.0.2 up, and so "+
		"on for each app) and start the emulator again", "address", host, "err", err)
}
