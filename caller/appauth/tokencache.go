package appauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/databricks/databricks-sdk-go/credentials/u2m/cache"
	"golang.org/x/oauth2"
)

// FileTokenCache is a u2m token cache in one JSON file, readable by its owner only (0600 in a 0700 directory). It
// refuses to read a file others can read: a refresh token is a long-lived credential.
type FileTokenCache struct {
	Path string
	mu   sync.Mutex
}

type tokenCacheFile struct {
	Version int                      `json:"version"`
	Tokens  map[string]*oauth2.Token `json:"tokens"`
}

func (c *FileTokenCache) Lookup(key string) (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.read()
	if err != nil {
		return nil, err
	}
	t, ok := f.Tokens[key]
	if !ok {
		return nil, cache.ErrNotFound
	}
	return t, nil
}

func (c *FileTokenCache) Store(key string, t *oauth2.Token) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.read()
	if err != nil {
		return err
	}
	if t == nil {
		delete(f.Tokens, key)
	} else {
		f.Tokens[key] = t
	}
	dir := filepath.Dir(c.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	body, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".token-cache-*") // created 0600
	if err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("token cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	// Rename is atomic: a concurrent reader sees the old file or the new one, never half of one.
	if err := os.Rename(tmp.Name(), c.Path); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	return nil
}

func (c *FileTokenCache) read() (*tokenCacheFile, error) {
	f := &tokenCacheFile{Version: 1, Tokens: map[string]*oauth2.Token{}}
	info, err := os.Stat(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token cache %s is readable by others (mode %o): run `chmod 600 %s`", c.Path, info.Mode().Perm(), c.Path)
	}
	body, err := os.ReadFile(c.Path)
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	if err := json.Unmarshal(body, f); err != nil {
		return nil, fmt.Errorf("token cache %s is corrupt (delete it and log in again): %w", c.Path, err)
	}
	if f.Tokens == nil {
		f.Tokens = map[string]*oauth2.Token{}
	}
	return f, nil
}
