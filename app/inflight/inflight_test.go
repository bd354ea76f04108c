package inflight

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/app/jsonhttp"
)

// blocking is a handler that holds each request until release is closed, and records the most it held at once.
type blocking struct {
	entered      chan struct{}
	release      chan struct{}
	now, highest atomic.Int32
}

func newBlocking() *blocking {
	return &blocking{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := b.now.Add(1)
	for {
		h := b.highest.Load()
		if n <= h || b.highest.CompareAndSwap(h, n) {
			break
		}
	}
	b.entered <- struct{}{}
	<-b.release
	b.now.Add(-1)
	w.WriteHeader(http.StatusOK)
}

func serve(h http.Handler) chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/echo", nil))
		done <- rec
	}()
	return done
}

// TestLimit runs each case in a synctest bubble: the wait for a slot runs on its fake clock, and synctest.Wait
// tells when every request is blocked, so no case sleeps or depends on the machine's speed.
func TestLimit(t *testing.T) {
	t.Parallel()
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, f)
		})
	}
	run("over the limit after the wait: 503 with Retry-After", func(t *testing.T) {
		b := newBlocking()
		h := Limit(2, 10*time.Millisecond)(b)
		first, second := serve(h), serve(h)
		<-b.entered
		<-b.entered
		rec := <-serve(h)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		var e jsonhttp.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, jsonhttp.CodeUnavailable, e.Code)
		assert.Contains(t, e.Message, "2 requests to /api/echo are in progress")
		close(b.release)
		assert.Equal(t, http.StatusOK, (<-first).Code)
		assert.Equal(t, http.StatusOK, (<-second).Code)
	})
	run("a slot that frees during the wait lets the request in", func(t *testing.T) {
		b := newBlocking()
		h := Limit(1, time.Minute)(b)
		first := serve(h)
		<-b.entered
		waiting := serve(h)
		synctest.Wait() // the second request is waiting for the slot, or in
		select {
		case <-b.entered:
			t.Fatal("a second request got in while the only slot was taken")
		default:
		}
		close(b.release)
		assert.Equal(t, http.StatusOK, (<-first).Code)
		assert.Equal(t, http.StatusOK, (<-waiting).Code)
	})
	run("never more than n at once", func(t *testing.T) {
		b := newBlocking()
		h := Limit(3, time.Minute)(b)
		var wg sync.WaitGroup
		codes := make(chan int, 20)
		for range 20 {
			wg.Go(func() { codes <- (<-serve(h)).Code })
		}
		for range 3 {
			<-b.entered
		}
		close(b.release)
		wg.Wait()
		close(codes)
		for code := range codes {
			assert.Equal(t, http.StatusOK, code)
		}
		assert.Equal(t, int32(3), b.highest.Load())
	})
}
