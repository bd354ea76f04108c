package workspace

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/databricks-sample/go-apps-api/app/identity"
)

// BenchmarkRewrite is the proxy's header rewriting for one request carrying spoofed identity headers: remove every
// header ownedByProxy names, in any spelling, and set its own.
func BenchmarkRewrite(b *testing.B) {
	w, err := Start(b.Context(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	p := w.apps.byName["api-app"].proxy
	fwd := &forward{
		upstream:  &url.URL{Scheme: "http", Host: "127.0.0.1:8000"},
		principal: principal{Kind: identity.KindUser, ID: "1001", UserName: "dev@example.com", Email: "dev@example.com"},
		user:      "1001@1234567890123456",
		requestID: "5b0f3f2e-8a53-4c1e-9d0e-6a1c2b3d4e5f",
	}
	in := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9/api/whoami", nil)
	in = in.WithContext(context.WithValue(in.Context(), forwardKey{}, fwd))
	in.Header.Set("Authorization", "Bearer x.y.z")
	in.Header.Set("User-Agent", "bench")
	in.Header["x-forwarded-user"] = []string{"spoofed@1"}
	in.Header["X_Forwarded_Email"] = []string{"spoofed@example.com"}
	b.ReportAllocs()
	for b.Loop() {
		pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
		p.rewrite(pr)
		if pr.Out.Header.Get(identity.HeaderUser) != "1001@1234567890123456" {
			b.Fatal(pr.Out.Header)
		}
	}
}

// BenchmarkAuthorize is one approval at the authorize endpoint, with that many other codes outstanding: its cost
// must not grow with them, since token redemption waits on the same lock.
func BenchmarkAuthorize(b *testing.B) {
	q := url.Values{"client_id": {CLIClientID}, "response_type": {"code"}, "redirect_uri": {"http://localhost:8020"},
		"state": {"s"}, "code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"},
		"scope": {"offline_access all-apis"}}
	target := PathAuthorize + "?" + q.Encode()
	for _, outstanding := range []int{0, 1_000, 9_000} {
		b.Run(fmt.Sprintf("outstanding=%d", outstanding), func(b *testing.B) {
			w, err := Start(b.Context(), Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			kept := map[string]bool{}
			for i := range outstanding {
				code, _ := w.auth.grants.newCode(authCode{clientID: "c", redirectURI: fmt.Sprintf("http://localhost:%d", 1+i)})
				kept[code] = true
			}
			handler := w.routes()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
				if rec.Code != http.StatusFound || !strings.Contains(rec.Header().Get("Location"), "code=") {
					b.Fatal(rec.Code, rec.Header())
				}
				if n++; n%maxCodesPerTarget == 0 { // keep the outstanding count where the sub-benchmark says
					b.StopTimer()
					w.auth.grants.mu.Lock()
					for code := range maps.Keys(w.auth.grants.codes) {
						if !kept[code] {
							w.auth.grants.forgetCodeLocked(code)
						}
					}
					w.auth.grants.mu.Unlock()
					b.StartTimer()
				}
			}
		})
	}
}
