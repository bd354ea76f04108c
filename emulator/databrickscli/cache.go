package databrickscli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/databricks/databricks-sdk-go/credentials/u2m/cache"
	"golang.org/x/oauth2"
)

// fileCache keeps tokens, refresh tokens included, in one owner-only JSON file, like the CLI's
// ~/.databricks/token-cache.json but next to the stand-in so it never touches the user's real cache.
type fileCache struct{ path string }

type cacheFile struct {
	Version int                      `json:"version"`
	Tokens  map[string]*oauth2.Token `json:"tokens"`
}

func (c *fileCache) load() (cacheFile, error) {
	f := cacheFile{Version: 1, Tokens: map[string]*oauth2.Token{}}
	data, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read the token cache: %w", err)
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Tokens == nil {
		// A damaged cache only costs a new login.
		return cacheFile{Version: 1, Tokens: map[string]*oauth2.Token{}}, nil
	}
	return f, nil
}

func (c *fileCache) Lookup(key string) (*oauth2.Token, error) {
	f, err := c.load()
	if err != nil {
		return nil, err
	}
	t, ok := f.Tokens[key]
	if !ok || t == nil {
		return nil, cache.ErrNotFound
	}
	return t, nil
}

// Store replaces the file in one rename, so a concurrent stand-in reads the old cache or the new, never half.
func (c *fileCache) Store(key string, t *oauth2.Token) error {
	f, err := c.load()
	if err != nil {
		return err
	}
	if t == nil {
		delete(f.Tokens, key)
	} else {
		f.Tokens[key] = t
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode the token cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".token-cache-*")
	if err != nil {
		return fmt.Errorf("write the token cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write the token cache: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write the token cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the token cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("write the token cache: %w", err)
	}
	return nil
}
