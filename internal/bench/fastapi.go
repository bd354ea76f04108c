package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// fastAPIApp is the peer the app's throughput is compared with: FastAPI on uvicorn, one worker, access log off.
//
//go:embed fastapi_whoami.py
var fastAPIApp []byte

// findFastAPI returns a Python that can import FastAPI and uvicorn (python, if set; else python3 on PATH, then
// /usr/bin/python3, where Debian's python3-fastapi and python3-uvicorn install), and which HTTP parser uvicorn will
// use, or why there is none.
func findFastAPI(ctx context.Context, python string) (py, parser string, err error) {
	candidates := []string{python}
	if python == "" {
		candidates = []string{"python3", "/usr/bin/python3"}
	}
	imports := func(py, modules string) bool {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, py, "-c", "import "+modules).Run() == nil
	}
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil || !imports(path, "fastapi, uvicorn") {
			continue
		}
		parser = "h11, pure Python"
		if imports(path, "httptools") {
			parser = "httptools"
		}
		return path, parser, nil
	}
	return "", "", fmt.Errorf("no Python among %q imports fastapi and uvicorn (Debian: apt-get install python3-fastapi python3-uvicorn)", candidates)
}

// startFastAPI runs the peer with py as one uvicorn worker without access log.
func startFastAPI(ctx context.Context, dir, py string) (*process, error) {
	appDir := filepath.Join(dir, "fastapi")
	if err := os.MkdirAll(appDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(appDir, "fastapi_whoami.py"), fastAPIApp, 0o600); err != nil {
		return nil, err
	}
	return startProcess(ctx, dir, "fastapi", []string{py, "-m", "uvicorn", "fastapi_whoami:app",
		"--host", "127.0.0.1", "--port", "$PORT", "--no-access-log", "--log-level", "warning"},
		[]string{"PYTHONDONTWRITEBYTECODE=1"}, inDir(appDir))
}
