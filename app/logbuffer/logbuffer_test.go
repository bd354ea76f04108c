package logbuffer

import (
	"bufio"
	"fmt"
	"io"
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
	case <-time.After(5 * time.Second):
		t.Fatal("the first line was not flushed within 5 s")
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
