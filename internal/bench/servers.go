package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/databricks-sample/go-apps-api/app/identity"
	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// serveBare is the bare net/http handler the app is compared with: no routing, identity parsing, logging or
// recovery. It answers every request with the app's own /api/whoami answer from --body-file: replayed as bytes, or,
// with --encode, decoded once and encoded again per request as the app does, so that only the middleware differs.
// It is served as the app is served (appLikeServer), so that only the handler differs.
func serveBare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bare-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	bodyFile := fs.String("body-file", "", "the body to answer with")
	encode := fs.Bool("encode", false, "encode the body per request instead of replaying its bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		return err
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	})
	if *encode {
		var v identity.WhoAmI
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		handler = func(w http.ResponseWriter, r *http.Request) { jsonhttp.Write(w, http.StatusOK, v) }
	}
	return serveUntil(ctx, appLikeServer(*addr, handler))
}

// appLikeServer is an http.Server with the settings of the app's (app/run.go): its timeouts, header limit and
// protocols, which every production server should have and which cost a little per request.
func appLikeServer(addr string, h http.Handler) *http.Server {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

// plainProxyIdleConns is as many idle connections to the app as the emulator's proxy keeps.
const plainProxyIdleConns = 128

// servePlainProxy is the plain reverse proxy the emulator's proxy is compared with: an httputil.ReverseProxy that
// forwards every request to --upstream as it came, identity headers included, with no check and no header of its
// own. It is tuned and served as the emulator's proxy is (idle connections, pooled copy buffers, the listener's
// timeouts and the wait for the app's response headers, which every production proxy should have and which cost a
// little per request), so that what the emulator's proxy costs beyond it is the price of emulating the platform.
func servePlainProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("plain-proxy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "the app's URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--upstream %q: want the app's URL", *upstream)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Rewrite drops X-Forwarded-Host with the other X-Forwarded-* it owns: keep the client's, as sent.
			if h := pr.In.Header.Values(identity.HeaderHost); len(h) > 0 {
				pr.Out.Header[identity.HeaderHost] = h
			}
		},
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ResponseHeaderTimeout: workspace.DefaultRequestTimeout, MaxIdleConnsPerHost: plainProxyIdleConns,
			IdleConnTimeout: 30 * time.Second},
		BufferPool: &bufferPool{},
	}
	return serveUntil(ctx, &http.Server{Addr: *addr, Handler: rp, ReadHeaderTimeout: workspace.DefaultReadHeaderTimeout,
		ReadTimeout: workspace.DefaultReadTimeout, IdleTimeout: workspace.DefaultIdleTimeout,
		MaxHeaderBytes: workspace.DefaultMaxHeaderBytes})
}

type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }

func serveUntil(ctx context.Context, srv *http.Server) error {
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
