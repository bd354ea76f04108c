package logbuffer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Writer writes into a pipe whose other end the test reads line by line, so what reaches the output is seen as it
// arrives, with no shared buffer to lock.
func TestWriterFlushesPeriodicallyAndOnClose(t *testing.T) {
	t.Parallel()
	r, w := io.Pipe()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(r); sc.Scan(); {
			lines <- sc.Text()
		}
	}()
	b := New(w, 20*time.Millisecond)
	_, err := b.Write([]byte("first\n"))
	require.NoError(t, err)
	select {
	case line := <-lines:
		assert.Equal(t, "first", line)
	case <-time.After(2 * time.Minute): // only a hang reaches this, however loaded the machine
		t.Fatal("the first line was never flushed")
	}

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { _, _ = fmt.Fprintf(b, "line %02d\n", i) })
	}
	wg.Wait()
	require.NoError(t, b.Close())
	require.NoError(t, w.Close())
	var rest []string
	for line := range lines {
		rest = append(rest, line)
	}
	assert.Len(t, rest, 50)
	for _, line := range rest {
		assert.Regexp(t, `^line \d\d$`, line, "every line written whole")
	}
}

// BenchmarkLogLine writes one request's log line to a pipe, as the app's stdout is on the platform: straight to the
// pipe (a write(2) per line) and through a Writer.
func BenchmarkLogLine(b *testing.B) {
	line := []byte(`{"time":"2026-12-02T10:00:00.000000000Z","level":"INFO","msg":"request","method":"GET","path":"/api/whoami","status":200,"duration":41000,"request_id":"0b7e5a8e-6a43-4f43-9f6f-0c3b8f0f2f4d","caller":"2001@1234567890123456"}` + "\n")
	for _, batched := range []bool{false, true} {
		b.Run(map[bool]string{false: "direct", true: "batched"}[batched], func(b *testing.B) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			drained := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, r); close(drained) }()
			var out io.Writer = w
			if batched {
				out = New(w, 100*time.Millisecond)
			}
			b.SetBytes(int64(len(line)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = out.Write(line)
				}
			})
			b.StopTimer()
			if lb, ok := out.(*Writer); ok {
				_ = lb.Close()
			}
			w.Close()
			<-drained
			r.Close()
		})
	}
}
