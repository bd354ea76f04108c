package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/databricks-sample/go-apps-api/emulator/internal/gotool"
	"github.com/databricks-sample/go-apps-api/emulator/workspace"
)

// medianStartup starts argv n times in dir and returns the median time from exec to the first 200 from /api/health.
func medianStartup(ctx context.Context, dir string, n int, workDir string, argv []string) (time.Duration, error) {
	var times []time.Duration
	for range n {
		p, err := startProcess(ctx, dir, "startup", argv, nil, inDir(workDir))
		if err != nil {
			return 0, err
		}
		times = append(times, p.ready)
		p.stop()
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// process is an app-like process listening on 127.0.0.1.
type process struct {
	cmd    *exec.Cmd
	url    string
	ready  time.Duration // from exec to the first 200 from /api/health (or any answer, for the bare server)
	exited chan struct{}
}

type processOption func(*exec.Cmd)

func inDir(dir string) processOption { return func(c *exec.Cmd) { c.Dir = dir } }

// startProcess runs argv with a free loopback port (in $ADDR of argv, and in APP_LISTEN_ADDR and
// DATABRICKS_APP_PORT) and waits until it answers.
func startProcess(ctx context.Context, dir, name string, argv, env []string, opts ...processOption) (*process, error) {
	port, err := workspace.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.ReplaceAll(a, "$ADDR", addr)
	}
	logFile, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(gotool.CleanEnv(dir), append(env, "APP_LISTEN_ADDR="+addr, "DATABRICKS_APP_PORT="+strconv.Itoa(port),
		"TMPDIR="+dir)...)
	for _, o := range opts {
		o(cmd)
	}
	p := &process{cmd: cmd, url: "http://" + addr, exited: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(p.url + "/api/health")
		if err == nil {
			resp.Body.Close()
			p.ready = time.Since(start)
			return p, nil
		}
		select {
		case <-p.exited:
			log, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("%s exited before it answered:\n%s", name, log)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			p.stop()
			return nil, fmt.Errorf("%s did not answer within a minute", name)
		}
	}
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// rss is the process's resident set size in bytes, from /proc (Linux); 0 where that is not available.
func (p *process) rss() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
