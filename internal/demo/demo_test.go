package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo's whole scenario, as `make demo` runs it: every row as expected, 80 columns, nothing left behind.
func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the demo's own folder goes here, so the test can see it removed
	t.Setenv("GORACE", "atexit_sleep_ms=0")

	var stdout, stderr bytes.Buffer
	err := run(t.Context(), &stdout, &stderr)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)

	out := stdout.String()
	assert.Contains(t, out, "Every path behaved as expected.")
	for _, want := range []string{
		"local ", "local+scopes", "external", "app-to-app", "no CAN USE", "bad token",
		"1001@1234567890123456", "2001@1234567890123456", "2003@1234567890123456", "dev@example.com",
		"403 ok", "401 ok", "forwarded token's scopes: sql file.files dashboards.genie",
		"databricks apps update-permissions",
		// The data rows: two users and the app, three views of the same orders; then the two refusals.
		"dev@example.com  114 of 114  visible", "ana@example.com  56 of 114   masked",
		"api-app's SP     114 of 114  masked", "no sql scope", "missing [sql]", "FAILED ok",
		"SELECT on Table 'samples.sales.orders'",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotRegexp(t, `(?m) FAIL$`, out)
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `'{"`) { // a command's JSON is not broken to fit
			assert.LessOrEqual(t, utf8.RuneCountInString(line), 80, "too wide for 80 columns: %q", line)
		}
	}
	for _, secret := range []string{"emulator-secret-", "not-a-real-token"} {
		assert.NotContains(t, out+stderr.String(), secret)
	}

	left, err := filepath.Glob(filepath.Join(tmp, "apps-demo-*"))
	require.NoError(t, err)
	assert.Empty(t, left, "the demo left its folder behind")
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		t.Logf("left in TMPDIR: %s", e.Name())
	}
}
