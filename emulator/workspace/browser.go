package workspace

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HeadlessBrowser stands in for the user's browser in a U2M login against the emulator: pass it to
// u2m.WithBrowser. It fetches the authorize URL in the background (the SDK waits for the redirect only after the
// browser call returns) and follows the redirect to the SDK's callback. If the workspace refuses the request
// without redirecting, nobody would ever call back, so it reports that through fail (for example the cancel
// function of the login's context).
func HeadlessBrowser(fail func(error)) func(authorizeURL string) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	return func(authorizeURL string) error {
		go func() {
			resp, err := client.Get(authorizeURL)
			if err != nil {
				fail(fmt.Errorf("open the authorize URL: %w", err))
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 400 && resp.Request.URL.Path == PathAuthorize {
				var oauthErr struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&oauthErr)
				fail(fmt.Errorf("the workspace refused the login: %s: %s", oauthErr.Error, oauthErr.Description))
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		}()
		return nil
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now, for servers that take a port number rather than a
// listener (the SDK's U2M callback, an app's DATABRICKS_APP_PORT). Another process may take it before it is used.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
