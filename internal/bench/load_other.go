//go:build !linux

package main

import (
	"context"
	"errors"
	"net/http"
)

// run needs Linux, as the rest of the bench does (server CPU time comes from /proc).
func (l load) run(context.Context, string, http.Header, string) (loadResult, error) {
	return loadResult{}, errors.New("make bench runs on Linux only: its load generator uses epoll, its CPU times /proc")
}
