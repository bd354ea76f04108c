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

	"github.com/databricks-sample/go-apps-api/emulator/workspace"
	"github.com/databricks-sample/go-apps-api/internal/gotool"
)

// startupRatios starts the packaged command and the binary in turn, n times each, and returns the ratio of their
// times from exec to the first answer from /api/health, per pair, and the median times of each.
func startupRatios(ctx context.Context, dir string, n int, packagedDir string, packaged, direct []string) (
	ratios []float64, packagedMedian, directMedian time.Duration, err error) {
	var packagedTimes, directTimes []time.Duration
	for range n {
		p, err := startProcess(ctx, dir, "startup", packaged, nil, inDir(packagedDir))
		if err != nil {
			return nil, 0, 0, err
		}
		p.stop()
		d, err := startProcess(ctx, dir, "startup", direct, nil)
		if err != nil {
			return nil, 0, 0, err
		}
		d.stop()
		packagedTimes, directTimes = append(packagedTimes, p.ready), append(directTimes, d.ready)
		ratios = append(ratios, float64(p.ready)/float64(d.ready))
	}
	slices.Sort(packagedTimes)
	slices.Sort(directTimes)
	return ratios, packagedTimes[n/2], directTimes[n/2], nil
}

// process is a server process listening on 127.0.0.1.
type process struct {
	cmd    *exec.Cmd
	url    string
	ready  time.Duration // from exec to the first answer from /api/health (or the state file, for the emulator)
	exited chan struct{}
}

// processOption changes how startProcess runs a process.
type processOption func(*startOptions)

type startOptions struct {
	cmd *exec.Cmd
	// ready reports whether the process is ready to serve; by default, whether it answers GET /api/health at all.
	ready func(p *process) bool
}

func inDir(dir string) processOption { return func(o *startOptions) { o.cmd.Dir = dir } }

// readyWhen replaces the /api/health probe, for a process that tells it is ready some other way.
func readyWhen(ready func(p *process) bool) processOption {
	return func(o *startOptions) { o.ready = ready }
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpu is the CPU time the process has used so far, user and system, in all its threads, from /proc/PID/stat. The
// load generator, wrk, is a process of its own, so what it costs is never counted against a server.
func (p *process) cpu() (time.Duration, error) { return cpuTime(strconv.Itoa(p.cmd.Process.Pid)) }

// cpuTime reads /proc/PID/stat; pid "self" is this process.
func cpuTime(pid string) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, fmt.Errorf("server CPU time (Linux /proc only): %w", err)
	}
	// pid (comm) state ppid …: comm may hold spaces, so the fields are counted from the last ')'. utime and stime
	// are the 14th and 15th fields.
	i := strings.LastIndexByte(string(data), ')')
	fields := strings.Fields(string(data[i+1:]))
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// startProcess runs argv with a free loopback port (in $ADDR or $PORT of argv, and in APP_LISTEN_ADDR and
// DATABRICKS_APP_PORT) and waits until it is ready.
func startProcess(ctx context.Context, dir, name string, argv, env []string, opts ...processOption) (*process, error) {
	port, err := workspace.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.NewReplacer("$ADDR", addr, "$PORT", strconv.Itoa(port)).Replace(a)
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
	client := &http.Client{Timeout: time.Second}
	o := startOptions{cmd: cmd, ready: func(p *process) bool {
		resp, err := client.Get(p.url + "/api/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}}
	for _, opt := range opts {
		opt(&o)
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
	for !o.ready(p) {
		select {
		case <-p.exited:
			log, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("%s exited before it was ready:\n%s", name, log)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			p.stop()
			return nil, fmt.Errorf("%s was not ready within a minute", name)
		}
	}
	p.ready = time.Since(start)
	return p, nil
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
