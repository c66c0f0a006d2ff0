// nemu-exec: the launcher Nemutator injects into pods that read secrets from Vault.
//
//	nemu-exec init --bin <dir> [--render]
//	                          the initContainer: copy, then (with --render) render
//	nemu-exec copy <dir>      copy this binary into <dir> (the shared volume)
//	nemu-exec render          write the pod's declared files into NEMUTATOR_SECRETS_DIR
//	nemu-exec -- <argv...>    fetch this container's env from the node agent, render files,
//	                          start a detached watcher (files/signal), then execve argv
//
// It talks to the agent over its unix socket (NEMUTATOR_SOCKET) with the pod's projected
// token (NEMUTATOR_TOKEN_FILE) and container name (NEMUTATOR_CONTAINER). Standard library
// only, static (CGO_ENABLED=0): it runs inside any image, distroless included. It never
// prints a value: errors name variables, files and paths, never what they hold.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	socket     string
	tokenFile  string
	container  string
	secretsDir string
	wait       time.Duration
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func loadConfig() config {
	wait, err := time.ParseDuration(env("NEMUTATOR_WAIT", "30s"))
	if err != nil {
		wait = 30 * time.Second
	}
	return config{
		socket:     env("NEMUTATOR_SOCKET", "/nemutator/socket/agent.sock"),
		tokenFile:  env("NEMUTATOR_TOKEN_FILE", "/nemutator/token/token"),
		container:  env("NEMUTATOR_CONTAINER", ""),
		secretsDir: env("NEMUTATOR_SECRETS_DIR", "/nemutator/secrets"),
		wait:       wait,
	}
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "nemu-exec: "+format+"\n", args...)
	os.Exit(code)
}

const usage = "usage: nemu-exec init --bin <dir> [--render] | nemu-exec copy <dir> | nemu-exec render | nemu-exec -- <command> [args...]"

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		fail(2, "%s", usage)
	}
	switch args[0] {
	case "init":
		bin, doRender := "", false
		for i := 1; i < len(args); i++ {
			switch {
			case args[i] == "--bin" && i+1 < len(args):
				bin = args[i+1]
				i++
			case args[i] == "--render":
				doRender = true
			default:
				fail(2, "init: unexpected argument %q; %s", args[i], usage)
			}
		}
		if bin == "" {
			fail(2, "init: --bin <dir> is required; %s", usage)
		}
		if err := copySelf(bin); err != nil {
			fail(1, "%v", err)
		}
		if doRender {
			cfg := loadConfig()
			if cfg.container == "" {
				cfg.container = "nemutator-init"
			}
			if err := render(cfg); err != nil {
				fail(1, "%v", err)
			}
		}
	case "copy":
		if len(args) != 2 {
			fail(2, "%s", usage)
		}
		if err := copySelf(args[1]); err != nil {
			fail(1, "%v", err)
		}
	case "render":
		cfg := loadConfig()
		if cfg.container == "" {
			cfg.container = "nemutator-init"
		}
		if err := render(cfg); err != nil {
			fail(1, "%v", err)
		}
	case "watch":
		// Internal: started by exec mode, follows rotations for the process it became.
		if !(len(args) == 3 || (len(args) == 5 && args[3] == "--signal")) || args[1] != "--pid" {
			fail(2, "usage: nemu-exec watch --pid <pid> [--signal <name>]")
		}
		pid, err := strconv.Atoi(args[2])
		if err != nil || pid <= 0 {
			fail(2, "watch: bad pid %q", args[2])
		}
		signal := ""
		if len(args) == 5 {
			signal = args[4]
		}
		watch(loadConfig(), pid, signal)
	case "--":
		if len(args) < 2 {
			fail(2, "nothing to run after --; %s", usage)
		}
		cfg := loadConfig()
		if cfg.container == "" {
			fail(2, "NEMU_ERR_LAUNCHER_CONFIG: NEMUTATOR_CONTAINER is not set; the Nemutator webhook sets it to the container's name")
		}
		execWithSecrets(cfg, args[1:])
	default:
		fail(2, "unknown mode %q; %s", args[0], usage)
	}
}

// copySelf copies this binary to <dir>/nemu-exec, atomically.
func copySelf(dir string) error {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("NEMU_ERR_LAUNCHER_COPY: cannot open my own binary (%v)", unwrapPathError(err))
	}
	defer self.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("NEMU_ERR_LAUNCHER_COPY: cannot create %s (%v)", dir, unwrapPathError(err))
	}
	tmp, err := os.CreateTemp(dir, ".nemu-exec.tmp-")
	if err != nil {
		return fmt.Errorf("NEMU_ERR_LAUNCHER_COPY: cannot write into %s (%v)", dir, unwrapPathError(err))
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, self); err != nil {
		tmp.Close()
		return fmt.Errorf("NEMU_ERR_LAUNCHER_COPY: copying failed (%v)", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("NEMU_ERR_LAUNCHER_COPY: chmod failed (%v)", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, "nemu-exec"))
}

// retriable: the agent restarting, or Vault briefly away — not a refusal.
func retriable(err error) bool {
	var ae *agentError
	if errors.As(err, &ae) {
		return ae.Status == 503 || ae.Status == 429
	}
	return strings.HasPrefix(err.Error(), "NEMU_ERR_LAUNCHER_SOCKET")
}

func fetch(cfg config, c *client) (*Secrets, error) {
	deadline := time.Now().Add(cfg.wait)
	delay := 200 * time.Millisecond
	for {
		s, err := c.secrets(context.Background())
		if err == nil {
			return s, nil
		}
		if !retriable(err) || time.Now().Add(delay).After(deadline) {
			return nil, err
		}
		time.Sleep(delay)
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

func render(cfg config) error {
	c := newClient(cfg)
	s, err := fetch(cfg, c)
	if err != nil {
		return err
	}
	acks, err := renderFiles(cfg.secretsDir, s.Files)
	if err != nil {
		return err
	}
	for path, v := range acks {
		if err := c.ack(context.Background(), path, v); err != nil {
			fmt.Fprintf(os.Stderr, "nemu-exec: acknowledging %s version %d failed: %v\n", path, v, err)
		}
	}
	return nil
}

func execWithSecrets(cfg config, argv []string) {
	c := newClient(cfg)
	s, err := fetch(cfg, c)
	if err != nil {
		fail(1, "%v", err)
	}
	acks, err := renderFiles(cfg.secretsDir, s.Files)
	if err != nil {
		fail(1, "%v", err)
	}
	if acks == nil {
		acks = map[string]int64{}
	}
	envv := mergeEnv(os.Environ(), s.Env)
	for _, e := range s.Env {
		if e.Path != "" && e.Version > acks[e.Path] {
			acks[e.Path] = e.Version
		}
	}
	prog, err := lookPath(argv[0], envv)
	if err != nil {
		fail(127, "%v", err)
	}
	for path, v := range acks {
		if err := c.ack(context.Background(), path, v); err != nil {
			fmt.Fprintf(os.Stderr, "nemu-exec: acknowledging %s version %d failed: %v\n", path, v, err)
		}
	}
	if len(s.Files) > 0 || s.RotateSignal != "" {
		startWatcher(s.RotateSignal)
	}
	err = syscall.Exec(prog, argv, envv)
	fail(126, "NEMU_ERR_LAUNCHER_EXEC: cannot run %s (%v)", argv[0], err)
}

// mergeEnv returns base with the secret variables set (replacing same-named ones).
func mergeEnv(base []string, secrets map[string]Secret) []string {
	out := make([]string, 0, len(base)+len(secrets))
	for _, kv := range base {
		name := kv
		if i := strings.IndexByte(kv, '='); i >= 0 {
			name = kv[:i]
		}
		if _, ok := secrets[name]; !ok {
			out = append(out, kv)
		}
	}
	for name, s := range secrets {
		out = append(out, name+"="+s.Value)
	}
	return out
}

func lookPath(file string, envv []string) (string, error) {
	if strings.Contains(file, "/") {
		if st, err := os.Stat(file); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("NEMU_ERR_LAUNCHER_EXEC: %s is not an executable file", file)
		}
		return file, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range envv {
		if strings.HasPrefix(kv, "PATH=") {
			path = kv[5:]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("NEMU_ERR_LAUNCHER_EXEC: %s not found in PATH", file)
}
