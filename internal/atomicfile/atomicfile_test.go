package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")

	require.NoError(t, WriteFile(path, []byte("old"), 0o600))
	require.NoError(t, WriteFile(path, []byte("new"), 0o640))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got), "replaced")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm(), "exactly the mode asked for")

	require.NoError(t, Write(filepath.Join(dir, "databricks"), strings.NewReader("#!/bin/sh\n"), 0o700))
	info, err = os.Stat(filepath.Join(dir, "databricks"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "no temporary file left")
}

// A write that fails leaves the old file as it was, and no temporary file.
func TestWriteFailureLeavesTheOldFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "profile")
	require.NoError(t, WriteFile(path, []byte("old"), 0o600))

	err := Write(path, failingReader{}, 0o600)
	require.ErrorIs(t, err, errRead)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(got))

	// Renaming over a directory fails: the temporary file goes too.
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o700))
	require.Error(t, WriteFile(sub, []byte("x"), 0o600))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "profile and sub, nothing else")
	assert.Error(t, WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600), "no directory is made")
}

var errRead = errors.New("read failed half way")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errRead }
