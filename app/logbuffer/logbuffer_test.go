package logbuffer

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is what Writer writes to, read while it writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWriterFlushesPeriodicallyAndOnClose(t *testing.T) {
	out := &lockedBuffer{}
	b := New(out, 20*time.Millisecond)
	_, err := b.Write([]byte("first\n"))
	require.NoError(t, err)
	assert.Eventually(t, func() bool { return out.String() == "first\n" }, 5*time.Second, 5*time.Millisecond)

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { _, _ = fmt.Fprintf(b, "line %02d\n", i) })
	}
	wg.Wait()
	require.NoError(t, b.Close())
	assert.Len(t, out.String(), len("first\n")+50*len("line 00\n"), "every line written whole")
}
