package runner

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ExposedListeners lists the addresses other than loopback listening on the app's port, such as 0.0.0.0:8000 or
// [::]:8000. An app listening there can be reached from the network around the machine, bypassing the proxy whose
// X-Forwarded-* headers it trusts: anyone could claim any identity. The runner gives every app
// APP_LISTEN_ADDR=127.0.0.1:PORT; this finds the ones that ignore it.
//
// It reads the kernel's socket tables (/proc/net/tcp and /proc/net/tcp6, Linux) and never connects anywhere; where
// they cannot be read it returns nothing. It sees every socket on the port in this network namespace, whichever
// process holds it.
func (a *App) ExposedListeners() []string {
	var exposed []string
	for _, addr := range listenersOn(a.port) {
		if !addr.Addr().IsLoopback() {
			exposed = append(exposed, addr.String())
		}
	}
	return exposed
}

// tcpListen is the LISTEN state in /proc/net/tcp's "st" column.
const tcpListen = "0A"

// listenersOn returns the addresses listening on port, from /proc/net/tcp and /proc/net/tcp6.
func listenersOn(port int) []netip.AddrPort {
	var found []netip.AddrPort
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			// "  sl  local_address rem_address   st …": "0: 0100007F:1F40 00000000:0000 0A …"
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != tcpListen {
				continue
			}
			addr, ok := parseProcAddr(fields[1])
			if ok && int(addr.Port()) == port {
				found = append(found, addr)
			}
		}
	}
	slices.SortFunc(found, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(found)
}

// parseProcAddr reads "0100007F:1F40": the address in hex as the kernel holds it, 32-bit words in the machine's byte
// order, then the port in hex. IPv4 in IPv6 (::ffff:127.0.0.1) comes back as IPv4.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	if !ok || (len(hexIP) != 8 && len(hexIP) != 32) {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(hexIP)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	addr, ok := netip.AddrFromSlice(raw)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), true
}
