package workspace

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds of an app's log. An app that logs in a loop must not grow the emulator without limit: the log keeps the
// most recent records within both a count and a byte budget, and cuts a line longer than logMaxMessage into pieces
// of that size (as Docker's log drivers do at the same 16 KiB), so nothing the app wrote is silently lost mid-line.
const (
	logMaxRecords = 10_000
	logMaxBytes   = 8 << 20
	logMaxMessage = 16 << 10
	// logFollowBuffer is how many records a follower may fall behind before the log drops it; the app's writes
	// never wait for a reader.
	logFollowBuffer = 1024
)

// Sources of a log record, as the platform names them: the app's own output, and the platform's lifecycle events.
const (
	logSourceApp    = "APP"
	logSourceSystem = "SYSTEM"
)

// logRecord is one line of an app's log, in the JSON shape /logz/stream sends and the databricks CLI parses.
type logRecord struct {
	Source    string  `json:"source"`
	Timestamp float64 `json:"timestamp"` // seconds since the epoch, with microseconds
	Message   string  `json:"message"`   // one line, ending in "\n"
	seq       uint64  // counts the log's records from 1, so a stream that resumes knows where it stopped
}

// Why a follower stops receiving records: context.Cause of its ctx.
var (
	errFollowerLagged = errors.New("the reader fell behind the app's log")
	errLogClosed      = errors.New("the workspace is shutting down")
)

// appLog is an app's recent output and lifecycle events, bounded, with live followers. It is safe for concurrent
// use.
type appLog struct {
	now func() time.Time

	mu        sync.Mutex
	ring      []logRecord // allocated on the first record; the oldest kept record is at head
	head      int
	size      int
	bytes     int // message bytes kept, for logMaxBytes
	followers map[*logFollower]struct{}
	seq       uint64 // the last record's seq
	closed    bool
	following sync.WaitGroup // one per follower not yet released with unfollow, so close can wait for them
}

func newAppLog() *appLog {
	return &appLog{now: time.Now, followers: map[*logFollower]struct{}{}}
}

// Writer returns a new writer for the app's stdout or stderr: each complete line becomes an APP record. Give stdout
// and stderr one writer each, so that a partial line on one is not joined to the other's. A last line without a
// newline stays pending until the next write completes it.
func (l *appLog) Writer() io.Writer { return &logLineWriter{log: l, source: logSourceApp} }

// System records a lifecycle event of the platform (deploying, started, stopped, crashed) as a SYSTEM record.
func (l *appLog) System(msg string) {
	w := &logLineWriter{log: l, source: logSourceSystem}
	_, _ = w.Write([]byte(strings.TrimSuffix(msg, "\n") + "\n"))
}

func (l *appLog) add(source, line string) {
	rec := logRecord{Source: source, Timestamp: float64(l.now().UnixMicro()) / 1e6, Message: line + "\n"}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	rec.seq = l.seq
	if l.ring == nil {
		l.ring = make([]logRecord, logMaxRecords)
	}
	for l.size == len(l.ring) || (l.size > 0 && l.bytes+len(rec.Message) > logMaxBytes) {
		l.bytes -= len(l.ring[l.head].Message)
		l.ring[l.head] = logRecord{}
		l.head = (l.head + 1) % len(l.ring)
		l.size--
	}
	l.ring[(l.head+l.size)%len(l.ring)] = rec
	l.size++
	l.bytes += len(rec.Message)
	for f := range l.followers {
		select {
		case f.records <- rec:
		default:
			l.drop(f, errFollowerLagged)
		}
	}
}

// records returns a copy of the kept records, oldest first.
func (l *appLog) records() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recordsLocked()
}

func (l *appLog) recordsLocked() []logRecord {
	out := make([]logRecord, l.size)
	for i := range out {
		out[i] = l.ring[(l.head+i)%len(l.ring)]
	}
	return out
}

// logFollower receives the records added after it started following, until the log drops it.
type logFollower struct {
	records chan logRecord
	// ctx ends when the log drops the follower, for falling behind or closing; context.Cause says which.
	ctx      context.Context
	stop     context.CancelCauseFunc
	released sync.Once
}

// follow returns the records kept so far and a follower receiving every later one, with neither a gap nor an
// overlap between the two. ok is false once the log is closed. Release the follower with unfollow.
func (l *appLog) follow() (backlog []logRecord, f *logFollower, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, false
	}
	f = &logFollower{records: make(chan logRecord, logFollowBuffer)}
	f.ctx, f.stop = context.WithCancelCause(context.Background())
	l.followers[f] = struct{}{}
	l.following.Add(1)
	return l.recordsLocked(), f, true
}

// unfollow releases a follower. It is idempotent.
func (l *appLog) unfollow(f *logFollower) {
	f.released.Do(func() {
		l.mu.Lock()
		l.drop(f, context.Canceled)
		l.mu.Unlock()
		l.following.Done()
	})
}

func (l *appLog) drop(f *logFollower, why error) {
	delete(l.followers, f)
	f.stop(why)
}

// close ends every follower and waits until each has been released: the workspace's Close returns once the log
// streams are over. Records may still be added; nobody follows them.
func (l *appLog) close() {
	l.mu.Lock()
	l.closed = true
	for f := range l.followers {
		l.drop(f, errLogClosed)
	}
	l.mu.Unlock()
	l.following.Wait()
}

// logLineWriter splits what an app writes into lines, each a record of its source.
type logLineWriter struct {
	log    *appLog
	source string

	mu      sync.Mutex
	partial []byte // the line so far, at most logMaxMessage bytes
}

func (w *logLineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		room := logMaxMessage - len(w.partial)
		// One byte past the room: a newline there still ends a line of exactly logMaxMessage bytes.
		look := p[:min(len(p), room+1)]
		if i := bytes.IndexByte(look, '\n'); i >= 0 {
			w.partial = append(w.partial, look[:i]...)
			w.log.add(w.source, string(bytes.TrimSuffix(w.partial, []byte("\r"))))
			w.partial = w.partial[:0]
			p = p[i+1:]
			continue
		}
		if len(look) > room {
			w.partial = append(w.partial, look[:room]...)
			w.cut()
			p = p[room:]
			continue
		}
		w.partial = append(w.partial, look...)
		p = p[len(look):]
	}
	return n, nil
}

// cut records a full partial line as a piece of its own. It cuts before a rune the bound would split, so that each
// piece stays valid UTF-8 (JSON would otherwise turn the halves into replacement characters), and keeps that rune's
// bytes for the next piece.
func (w *logLineWriter) cut() {
	end := len(w.partial)
	for i := end - 1; i >= 0 && i >= end-utf8.UTFMax; i-- {
		if utf8.RuneStart(w.partial[i]) {
			if !utf8.FullRune(w.partial[i:end]) {
				end = i
			}
			break
		}
	}
	w.log.add(w.source, string(w.partial[:end]))
	w.partial = append(w.partial[:0], w.partial[end:]...)
}

// logWriter is [Workspace.AppLogWriter].
func (m *appManager) logWriter(app string) io.Writer {
	if p := m.proxyOf(app); p != nil {
		return p.logs.Writer()
	}
	return io.Discard
}

// appLogSystemWriter returns a new writer into an app's log whose lines are SYSTEM records: the output of the
// platform's installers and build, as `databricks apps logs` shows it.
func (m *appManager) appLogSystemWriter(app string) io.Writer {
	if p := m.proxyOf(app); p != nil {
		return &logLineWriter{log: p.logs, source: logSourceSystem}
	}
	return io.Discard
}

// logSystem is [Workspace.AppLogSystem].
func (m *appManager) logSystem(app, msg string) {
	if p := m.proxyOf(app); p != nil {
		p.logs.System(msg)
	}
}

// names lists the apps in creation order: the model's first.
func (m *appManager) names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.order)
}

// proxyOf returns the named app's proxy, or nil.
func (m *appManager) proxyOf(app string) *appProxy {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec, ok := m.byName[app]; ok {
		return rec.proxy
	}
	return nil
}
