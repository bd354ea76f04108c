package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/testkit"
	"github.com/databricks-sample/go-apps-api/internal/testkit/emulated"
)

// browserTestEnv opts in to TestChromium; make browser-test sets it, and browserScreenshotEnv to where the
// screenshot goes (build/browser.png: compare it with docs/browser.png, the one the docs show, and copy it there
// when the page changed on purpose).
const (
	browserTestEnv       = "BROWSER_TEST"
	browserScreenshotEnv = "BROWSER_SCREENSHOT"
)

// findChromium returns the path of a Chromium or Chrome on PATH, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return ""
}

// Real headless Chromium walks what a person does: it opens the app under the emulator, picks dev@example.com on
// the login page, allows the app's scopes, and waits for the page to show who the app saw; then it takes the
// screenshot the docs show. Opt-in (make browser-test): it needs Chromium and takes seconds.
func TestChromium(t *testing.T) {
	chromium := findChromium()
	if os.Getenv(browserTestEnv) == "" {
		if chromium == "" {
			t.Skip("Chromium is not installed and " + browserTestEnv + " is not set: make browser-test installs it and runs this test")
		}
		t.Skip("opt-in: set " + browserTestEnv + "=1 (make browser-test) to drive " + chromium + " through the sign-in")
	}
	require.NotEmpty(t, chromium, "%s is set but there is no Chromium on PATH: apt-get install -y chromium (make browser-test does)", browserTestEnv)
	testkit.CleanEnv(t)
	ws, _ := emulated.WithApp(t, workspace.Options{})
	appURL := ws.AppURL("api-app")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.WindowSize(900, 760), chromedp.Flag("no-proxy-server", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox (containers, CI)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, testkit.Patience)
	defer cancelTimeout()

	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	text := func(selector string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(selector))
		require.NoError(t, err)
		return v
	}

	do(chromedp.Navigate(appURL+"/"), chromedp.WaitVisible(`button[value="dev@example.com"]`))
	loginTitle := text("h1")
	do(chromedp.Click(`button[value="dev@example.com"]`), chromedp.WaitVisible(`button[value="allow"]`))
	consentTitle := text("h1")
	do(chromedp.Click(`button[value="allow"]`), chromedp.WaitVisible("#identity"))
	name, user, scopes, requestID := text("#name"), text("#user"), text("#scopes"), text("#request-id")
	location, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	screenshot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)

	assert.Equal(t, "Sign in to api-app", loginTitle)
	assert.Equal(t, "Allow api-app to act on your behalf?", consentTitle)
	assert.Equal(t, appURL+"/", location)
	assert.Equal(t, "dev@example.com", name)
	assert.Equal(t, "1001@1234567890123456", user)
	for _, scope := range []string{"sql", "file.files", "dashboards.genie"} {
		assert.Contains(t, scopes, scope)
	}
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f-]{36}$`), requestID)

	path := os.Getenv(browserScreenshotEnv)
	if path == "" {
		path = filepath.Join(t.TempDir(), "browser.png")
	}
	require.NoError(t, os.WriteFile(path, screenshot, 0o644))
	t.Logf("screenshot of the page: %s (%d bytes)", path, len(screenshot))
}
