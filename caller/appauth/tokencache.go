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

	"github.com/databricks-sample/go-apps-api/internal/atomicfile"
)

// FileTokenCache is a u2m token cache in one JSON file, readable by its owner only (0600; a directory it makes is
// 0700). It refuses to read a file others can read: a refresh token is a long-lived credential. `callapp login` and
// the emulator's CLI stand-in keep their tokens in one.
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
	// A missing directory is made owner-only; an existing one keeps its mode (the emulator's CLI stand-in keeps
	// its cache in a folder of the user's choosing). The file is what must be owner-only.
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o700); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	body, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	// A concurrent reader sees the old file or the new one, never half of one.
	if err := atomicfile.WriteFile(c.Path, body, 0o600); err != nil {
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
