package appclient

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAPIPathValidation(t *testing.T) {
	t.Parallel()
	base, err := ParseAppURL("https://api-app-1.aws.databricksapps.com")
	require.NoError(t, err)
	tg := &Target{Base: base}
	ok := map[string]string{
		"/api/whoami":         "https://api-app-1.aws.databricksapps.com/api/whoami",
		"/api/items?x=1&y=2":  "https://api-app-1.aws.databricksapps.com/api/items?x=1&y=2",
		"/api/a%20b":          "https://api-app-1.aws.databricksapps.com/api/a%20b",
		"/api/v1/users/me":    "https://api-app-1.aws.databricksapps.com/api/v1/users/me",
		"/api/x..y/z.json":    "https://api-app-1.aws.databricksapps.com/api/x..y/z.json",
		"/api/search?q=a/b:c": "https://api-app-1.aws.databricksapps.com/api/search?q=a/b:c",
	}
	for p, want := range ok {
		got, err := tg.APIURL(p)
		if assert.NoError(t, err, p) {
			assert.Equal(t, want, got, p)
		}
	}
	refused := []string{
		"", "/", "/health", "api/whoami", "/API/whoami", "/apix/whoami",
		"/api/../logz", "/api/./whoami", "/api/..", "/api/x/../../logz",
		"//evil.example/api/x", "/api//evil.example", "https://evil.example/api/x", "http://evil.example/api/",
		"/api/%2e%2e/logz", "/api/%2E%2E/logz", "/api/x%2fy", "/api/x%5c..", "/api/%252e%252e/x", "/api/x%00",
		"/api/x\\..\\logz", "/api/x y", "/api/x\n", "/api/x#frag",
		"/api/" + strings.Repeat("a", 3000),
	}
	for _, p := range refused {
		got, err := tg.APIURL(p)
		if assert.Error(t, err, "%q should be refused, got %q", p, got) {
			continue
		}
	}
	// Whatever is accepted stays on the configured host.
	for _, p := range append(refused, "/api/@evil.example") {
		if got, err := tg.APIURL(p); err == nil {
			u, _ := url.Parse(got)
			assert.Equal(t, base.Host, u.Host, p)
		}
	}
}

func TestParseRetryAfterAndBackoff(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	d, ok := ParseRetryAfter("3", now)
	assert.True(t, ok)
	assert.Equal(t, 3*time.Second, d)
	d, ok = ParseRetryAfter(now.Add(10*time.Second).Format(http.TimeFormat), now)
	assert.True(t, ok)
	assert.Equal(t, 10*time.Second, d)
	d, _ = ParseRetryAfter("86400", now)
	assert.Equal(t, time.Minute, d, "capped")
	_, ok = ParseRetryAfter("soon", now)
	assert.False(t, ok)
	for attempt := 1; attempt <= 10; attempt++ {
		b := Backoff(attempt)
		full := min(250*time.Millisecond<<min(attempt-1, 5), 8*time.Second)
		assert.GreaterOrEqual(t, b, full/2)
		assert.LessOrEqual(t, b, full)
	}
}
