package workspace

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// BenchmarkProxy is a request through an app's proxy to a loopback app, as a test suite sends them, against the
// same request through a plain httputil.ReverseProxy that checks nothing (tuned as the emulator's is): the
// emulator's own cost per request is the difference. Run with -cpuprofile to see where it goes.
func BenchmarkProxy(b *testing.B) {
	body := []byte(`{"user":"2001@1234567890123456","kind":"service_principal"}` + "\n")
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(body)
	}))
	defer app.Close()
	// The emulator logs as emulator serve does by default: a line for each request its proxy answers itself.
	w, err := Start(b.Context(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if err := w.SetUpstream("api-app", app.URL); err != nil {
		b.Fatal(err)
	}
	upstream, _ := url.Parse(app.URL)
	// The plain proxy has the emulator listener's timeouts and the proxy's wait for response headers, as in make bench.
	plain := httptest.NewUnstartedServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(upstream) },
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: maxIdleUpstreamConns,
			ResponseHeaderTimeout: DefaultRequestTimeout},
		BufferPool: copyBuffers,
	})
	plain.Config.ReadHeaderTimeout = DefaultReadHeaderTimeout
	plain.Config.ReadTimeout = DefaultReadTimeout
	plain.Config.IdleTimeout = DefaultIdleTimeout
	plain.Start()
	defer plain.Close()

	m2m := m2mTokenB(b, w, "external-service")
	for _, bb := range []struct {
		name, url, token string
	}{
		{"plain", plain.URL + "/api/whoami", m2m},
		{"M2M", w.AppURL("api-app") + "/api/whoami", m2m},
		{"user", w.AppURL("api-app") + "/api/whoami", userTokenB(b, w)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			b.SetParallelism(16) // 32 clients on two cores, as make bench loads it
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, bb.url, nil)
					req.Header.Set("Authorization", "Bearer "+bb.token)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// m2mTokenB and userTokenB sign tokens directly, as the token endpoint would.
func m2mTokenB(b *testing.B, w *Workspace, spName string) string {
	sp, _ := w.dir.servicePrincipalByName(spName)
	p, _ := w.dir.subject(sp.ApplicationID)
	token, _, err := w.auth.issuer.issue(p, sp.ApplicationID, "", []string{ScopeAllAPIs}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	return token
}

func userTokenB(b *testing.B, w *Workspace) string {
	p, _ := w.dir.subject("dev@example.com")
	token, _, err := w.auth.issuer.issue(p, CLIClientID, "bench-grant", []string{ScopeAllAPIs}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	return token
}
