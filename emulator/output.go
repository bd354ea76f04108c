package main

import (
	"bytes"
	"io"
	"sync"
)

// prefixWriter labels each line an app prints, so several apps can share the emulator's terminal. Writers made
// from one lockedWriter never interleave within a line.
type prefixWriter struct {
	out    *lockedWriter
	prefix []byte
	buf    []byte
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.out.mu.Lock()
		_, err := p.out.w.Write(append(append([]byte{}, p.prefix...), p.buf[:i+1]...))
		p.out.mu.Unlock()
		if err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
