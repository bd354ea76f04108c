package workspace

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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
	p := w.apps["api-app"].proxy
	fwd := &forward{
		upstream:  &url.URL{Scheme: "http", Host: "127.0.0.1:8000"},
		principal: principal{Kind: identity.KindUser, ID: "1001", UserName: "dev@example.com", Email: "dev@example.com"},
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
