package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// startWatcher starts `nemu-exec watch --pid <this pid> [--signal <name>]` in its own session
// before execve: after execve this pid is the application, which the watcher follows
// (rendering files and signalling it on rotation) and outlives by at most a second. The
// signal comes from the secrets document exec mode already read, so the watcher needs no
// request of its own to know it.
func startWatcher(signal string) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nemu-exec: rotation watcher not started: %v\n", err)
		return
	}
	defer devnull.Close()
	argv := []string{"nemu-exec", "watch", "--pid", strconv.Itoa(os.Getpid())}
	if signal != "" {
		argv = append(argv, "--signal", signal)
	}
	_, err = os.StartProcess("/proc/self/exe", argv, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{devnull, devnull, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "nemu-exec: rotation watcher not started: %v\n", err)
	}
}

var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2, "SIGINT": syscall.SIGINT,
	"SIGTERM": syscall.SIGTERM, "SIGQUIT": syscall.SIGQUIT, "SIGWINCH": syscall.SIGWINCH, "SIGCONT": syscall.SIGCONT,
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil && os.Getppid() == pid
}

// watch follows rotations for pid. signalName is the secrets document's rotateSignal as exec
// mode read it ("" = none).
func watch(cfg config, pid int, signalName string) {
	c := newClient(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for alive(pid) {
			time.Sleep(500 * time.Millisecond)
		}
		cancel()
	}()
	signal := syscall.Signal(0)
	if signalName != "" {
		if sig, ok := signals[signalName]; ok {
			signal = sig
		} else {
			fmt.Fprintf(os.Stderr, "nemu-exec watch: unknown rotate signal %s; files are still replaced\n", signalName)
		}
	}
	delay := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := follow(ctx, cfg, c, pid, signal)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "nemu-exec watch: %v; reconnecting in %s\n", err, delay)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if delay < 10*time.Second {
			delay *= 2
		}
	}
}

func follow(ctx context.Context, cfg config, c *client, pid int, signal syscall.Signal) error {
	res, err := c.do(ctx, c.stream, "GET", "/v1/secrets/watch", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue // heartbeat
		}
		var line WatchLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("NEMU_ERR_LAUNCHER_PROTOCOL: a watch line is not JSON")
		}
		if len(line.Files) == 0 {
			continue // env only: the running process cannot take it; it acknowledges itself if it reloads
		}
		if _, err := renderFiles(cfg.secretsDir, line.Files); err != nil {
			fmt.Fprintf(os.Stderr, "nemu-exec watch: %v\n", err)
			continue
		}
		if signal != 0 {
			if err := syscall.Kill(pid, signal); err != nil {
				fmt.Fprintf(os.Stderr, "nemu-exec watch: signalling %d failed: %v\n", pid, err)
			}
		}
		if err := c.ack(ctx, line.Path, line.Version); err != nil {
			fmt.Fprintf(os.Stderr, "nemu-exec watch: acknowledging %s version %d failed: %v\n", line.Path, line.Version, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("the watch stream broke (%v)", err)
	}
	return fmt.Errorf("the agent closed the watch stream")
}
