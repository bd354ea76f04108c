package workspace

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestProxySpeaksH2C: an app's proxy takes HTTP/2 without TLS, with prior knowledge (curl --http2-prior-knowledge,
// gRPC clients) and by upgrading an HTTP/1.1 request (curl --http2), and runs the same checks as over HTTP/1.1.
func TestProxySpeaksH2C(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	require.NoError(t, w.SetUpstream("api-app", echoApp(t).URL))
	token := m2mToken(t, w, "external-service")

	t.Run("prior knowledge", func(t *testing.T) {
		client := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}}}
		for _, tt := range []struct {
			header http.Header
			status int
		}{{bearer(token), http.StatusOK}, {nil, http.StatusUnauthorized}} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, w.AppURL("api-app")+"/api/whoami", nil)
			require.NoError(t, err)
			req.Header = tt.header
			resp, err := client.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			assert.Equal(t, "HTTP/2.0", resp.Proto)
			require.Equal(t, tt.status, resp.StatusCode, string(body))
			if tt.status == http.StatusOK {
				var seen echoed
				require.NoError(t, json.Unmarshal(body, &seen))
				assert.Equal(t, "2001@1234567890123456", seen.Headers.Get("X-Forwarded-User"))
			}
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		status, body := h2cUpgrade(t, w.AppURL("api-app")+"/api/whoami", token)
		require.Equal(t, "200", status, body)
		var seen echoed
		require.NoError(t, json.Unmarshal([]byte(body), &seen))
		assert.Equal(t, "2001@1234567890123456", seen.Headers.Get("X-Forwarded-User"))
		status, _ = h2cUpgrade(t, w.AppURL("api-app")+"/api/whoami", "")
		assert.Equal(t, "401", status)
	})
}

// h2cUpgrade sends GET target over HTTP/1.1 asking to upgrade to h2c, as curl --http2 does, expects 101 and returns
// the status and body of the answer, which comes on HTTP/2 stream 1.
func h2cUpgrade(t *testing.T, target, token string) (status, body string) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, patience)
	require.NoError(t, err)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(patience))
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"+
		"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", u.RequestURI(), u.Host, auth)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	_, err = io.WriteString(conn, http2.ClientPreface)
	require.NoError(t, err)
	framer := http2.NewFramer(conn, br)
	framer.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	require.NoError(t, framer.WriteSettings())
	var out bytes.Buffer
	for {
		f, err := framer.ReadFrame()
		require.NoError(t, err)
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				require.NoError(t, framer.WriteSettingsAck())
			}
		case *http2.MetaHeadersFrame:
			require.Equal(t, uint32(1), f.StreamID, "the upgraded request is stream 1")
			status = f.PseudoValue("status")
			if f.StreamEnded() {
				return status, out.String()
			}
		case *http2.DataFrame:
			out.Write(f.Data())
			if f.StreamEnded() {
				return status, out.String()
			}
		}
	}
}
