package workspace

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func messages(recs []logRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Message
	}
	return out
}

func writeString(t *testing.T, w io.Writer, s string) {
	t.Helper()
	_, err := io.WriteString(w, s)
	require.NoError(t, err)
}

func TestAppLogWriterForUnknownApp(t *testing.T) {
	w, _ := startWorkspace(t, Options{})
	assert.Equal(t, io.Discard, w.AppLogWriter("no-such-app"))
	assert.NotPanics(t, func() { w.AppLogSystem("no-such-app", "App started") })
}

func TestAppLogLines(t *testing.T) {
	long := strings.Repeat("x", logMaxMessage)
	euro := strings.Repeat("a", logMaxMessage-1) + "€tail" // the bound falls inside the three-byte €

	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"lines in one write", []string{"one\ntwo\n"}, []string{"one\n", "two\n"}},
		{"a line across writes", []string{"par", "tial", " line\nnext"}, []string{"partial line\n"}},
		{"a partial line waits for its newline", []string{"no newline yet"}, nil},
		{"CRLF", []string{"windows\r\n"}, []string{"windows\n"}},
		{"an empty line", []string{"\n"}, []string{"\n"}},
		{"a line of exactly the bound", []string{long + "\n"}, []string{long + "\n"}},
		{"a long line is cut into pieces", []string{long + long + "end\n"}, []string{long + "\n", long + "\n", "end\n"}},
		{"a long line over many writes", []string{long[:100], long[100:] + "y", "z\n"}, []string{long + "\n", "yz\n"}},
		{"a cut keeps runes whole", []string{euro + "\n"}, []string{euro[:logMaxMessage-1] + "\n", "€tail\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newAppLog()
			w := l.Writer()
			for _, s := range tt.writes {
				n, err := io.WriteString(w, s)
				require.NoError(t, err)
				assert.Equal(t, len(s), n)
			}
			recs := l.records()
			assert.Equal(t, tt.want, nilIfEmpty(messages(recs)))
			for _, r := range recs {
				assert.Equal(t, logSourceApp, r.Source)
				assert.True(t, utf8.ValidString(r.Message))
				assert.LessOrEqual(t, len(r.Message), logMaxMessage+1)
			}
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestAppLogIsBounded(t *testing.T) {
	t.Run("records", func(t *testing.T) {
		l := newAppLog()
		w := l.Writer()
		for i := range 2 * logMaxRecords {
			writeString(t, w, fmt.Sprintf("line %d\n", i))
		}
		recs := l.records()
		require.Len(t, recs, logMaxRecords)
		assert.Equal(t, fmt.Sprintf("line %d\n", logMaxRecords), recs[0].Message, "the oldest go first")
		assert.Equal(t, fmt.Sprintf("line %d\n", 2*logMaxRecords-1), recs[len(recs)-1].Message)
	})
	t.Run("bytes", func(t *testing.T) {
		l := newAppLog()
		w := l.Writer()
		line := strings.Repeat("y", logMaxMessage) + "\n"
		for range 2 * logMaxBytes / len(line) {
			writeString(t, w, line)
		}
		total := 0
		for _, r := range l.records() {
			total += len(r.Message)
		}
		assert.LessOrEqual(t, total, logMaxBytes)
		assert.Greater(t, total, logMaxBytes-len(line), "the budget is used, not just the count")
	})
}

func TestAppLogDropsALaggingFollower(t *testing.T) {
	l := newAppLog()
	_, f, ok := l.follow()
	require.True(t, ok)
	defer l.unfollow(f)
	w := l.Writer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range logFollowBuffer + 10 {
			_, _ = fmt.Fprintf(w, "line %d\n", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("writes blocked on a follower that does not read")
	}
	select {
	case <-f.ctx.Done():
		assert.ErrorIs(t, context.Cause(f.ctx), errFollowerLagged)
	default:
		t.Fatal("the lagging follower was kept")
	}
	assert.Len(t, l.records(), logFollowBuffer+10)
}
