package workspace

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteProfileLeavesTheUsersFilesAlone(t *testing.T) {
	t.Parallel()
	w, _ := startWorkspace(t, Options{})
	cli := filepath.Join(t.TempDir(), "emulator")
	require.NoError(t, os.WriteFile(cli, []byte("#!/bin/sh\n"), 0o700))
	const usersConfig = "[DEFAULT]\nhost = https://real.cloud.databricks.com\n"

	tests := []struct {
		name     string
		mode     os.FileMode       // of the existing directory; 0 for a missing one
		files    map[string]string // already in it
		refused  string            // what the error mentions; empty when the profile is written
		wantMode os.FileMode
	}{
		{name: "a missing directory is created owner-only", wantMode: 0o700},
		{name: "an existing directory keeps its mode", mode: 0o755, wantMode: 0o755},
		{name: "the user's .databrickscfg (--profile-dir ~)", mode: 0o755, files: map[string]string{ProfileFileName: usersConfig},
			refused: ".databrickscfg, which the emulator did not write", wantMode: 0o755},
		{name: "the user's databricks CLI (--profile-dir ~/bin)", mode: 0o755, files: map[string]string{CLIFileName: "the real CLI"},
			refused: "databricks, which the emulator did not write", wantMode: 0o755},
		{name: "a directory others can write to", mode: 0o777, refused: "writable by other users", wantMode: 0o777},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "profile")
			if tt.mode != 0 {
				require.NoError(t, os.Mkdir(dir, 0o700))
				require.NoError(t, os.Chmod(dir, tt.mode)) // past the umask
				for name, content := range tt.files {
					require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
				}
			}

			_, err := w.WriteProfile(dir, cli)
			if tt.refused != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.refused)
			} else {
				require.NoError(t, err)
				assert.FileExists(t, filepath.Join(dir, ProfileFileName))
				assert.FileExists(t, filepath.Join(dir, CLIFileName))
			}
			info, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, tt.wantMode, info.Mode().Perm())
			for name, content := range tt.files {
				got, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				assert.Equal(t, content, string(got), "%s is untouched", name)
			}
		})
	}

	t.Run("the emulator's own profile is replaced", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "profile")
		_, err := w.WriteProfile(dir, cli)
		require.NoError(t, err)
		_, err = w.WriteProfile(dir, cli)
		assert.NoError(t, err)
	})

	// On one file system the stand-in is the executable itself under another name, whatever its size: no copy.
	t.Run("the stand-in is a hard link", func(t *testing.T) {
		dir := filepath.Join(filepath.Dir(cli), "linked")
		p, err := w.WriteProfile(dir, cli)
		require.NoError(t, err)
		src, err := os.Stat(cli)
		require.NoError(t, err)
		standIn, err := os.Lstat(p.CLIPath)
		require.NoError(t, err)
		assert.True(t, os.SameFile(src, standIn), "the same file")
		assert.True(t, standIn.Mode().IsRegular(), "not a symlink: the stand-in finds its profile beside its own path")
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 2, "the profile and the stand-in, no temporary link left behind")
	})
}
