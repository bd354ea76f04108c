package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// patience bounds every wait of these tests for something that takes milliseconds: long enough that only a hang
// reaches it, on a machine however loaded, so that no verdict depends on the machine's speed.
const patience = 2 * time.Minute

// syncBuffer is an io.Writer the app logs to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningApp is the real program started in-process by startApp.
type runningApp struct {
	URL    string
	Stdout *syncBuffer
	Stderr *syncBuffer
	stop   context.CancelFunc
	exited chan struct{} // closed when run has returned
	err    error         // what run returned, once exited is closed
}

// Stop cancels the app's context, as SIGTERM does, and returns what run returned.
func (a *runningApp) Stop(t *testing.T) error {
	t.Helper()
	a.stop()
	select {
	case <-a.exited:
		return a.err
	case <-time.After(patience):
		t.Fatal("the app did not stop")
		return nil
	}
}

// startApp runs the app in-process on a free loopback port with env as its whole environment, waits until /api/health
// answers and stops it when the test ends.
func startApp(t *testing.T, env map[string]string) *runningApp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningApp{Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, stop: cancel, exited: make(chan struct{})}
	getenv := func(k string) string { return env[k] }
	go func() {
		defer close(a.exited)
		a.err = run(ctx, []string{"app", "--addr", "127.0.0.1:0"}, getenv, a.Stdout, a.Stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.exited:
		case <-time.After(patience):
			t.Error("the app did not stop")
		}
	})

	deadline := time.Now().Add(patience)
	for a.URL == "" {
		require.True(t, time.Now().Before(deadline), "the app did not log its address; stdout:\n%s", a.Stdout)
		select {
		case <-a.exited:
			t.Fatalf("the app exited early: %v\n%s", a.err, a.Stderr)
		case <-time.After(10 * time.Millisecond):
		}
		a.URL = listeningURL(a.Stdout.String())
	}
	resp, err := http.Get(a.URL + "/api/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return a
}

// listeningURL finds the "listening" log line and returns the app's base URL.
func listeningURL(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
			return "http://" + line.Addr
		}
	}
	return ""
}

// call makes one request with the given headers and returns the status and the decoded JSON body.
func call(t *testing.T, method, url string, header http.Header, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var decoded map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&decoded))
	return resp.StatusCode, decoded
}

// A port another program holds is the first thing a second `make run` meets: the error says which address, where it
// came from, and how to choose another.
func TestAPortInUseSaysHowToChooseAnother(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	addr := taken.Addr().String()
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		from string
	}{
		{"--addr", []string{"app", "--addr", addr}, nil, "(from --addr)"},
		{"APP_LISTEN_ADDR", []string{"app"}, map[string]string{"APP_LISTEN_ADDR": addr}, "(from APP_LISTEN_ADDR)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			err := run(t.Context(), tt.args, getenv, io.Discard, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "listen on "+addr+" "+tt.from)
			assert.Contains(t, err.Error(), "address already in use")
			assert.Contains(t, err.Error(), "choose another address with --addr or APP_LISTEN_ADDR")
		})
	}
}
