package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Secret is one value as the agent serves it. Value never reaches a log line or an error.
type Secret struct {
	Value   string `json:"value"`
	Version int64  `json:"version"`
	Path    string `json:"path"`
}

// Secrets is the answer of GET /v1/secrets.
type Secrets struct {
	Env          map[string]Secret `json:"env"`
	Files        map[string]Secret `json:"files"`
	RotateSignal string            `json:"rotateSignal"`
}

// WatchLine is one NDJSON line of GET /v1/secrets/watch.
type WatchLine struct {
	Path    string            `json:"path"`
	Version int64             `json:"version"`
	Env     map[string]Secret `json:"env"`
	Files   map[string]Secret `json:"files"`
}

// agentError is the agent's JSON error; its message never holds a value.
type agentError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *agentError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("the agent answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

type client struct {
	socket    string
	tokenFile string
	container string
	http      *http.Client
	stream    *http.Client
}

func newClient(cfg config) *client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", cfg.socket)
	}
	return &client{
		socket:    cfg.socket,
		tokenFile: cfg.tokenFile,
		container: cfg.container,
		http:      &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 30 * time.Second},
		stream:    &http.Client{Transport: &http.Transport{DialContext: dial}},
	}
}

// token is re-read on every request: kubelet rotates the projected token file.
func (c *client) token() (string, error) {
	b, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return "", fmt.Errorf("NEMU_ERR_LAUNCHER_TOKEN: cannot read the pod token %s (%v); is the nemutator-token volume mounted?", c.tokenFile, unwrapPathError(err))
	}
	return strings.TrimSpace(string(b)), nil
}

func (c *client) do(ctx context.Context, hc *http.Client, method, path string, body []byte) (*http.Response, error) {
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Nemutator-Container", c.container)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("NEMU_ERR_LAUNCHER_SOCKET: cannot reach the Nemutator agent at %s (%v); is the agent running on this node and the nemutator-socket volume mounted?", c.socket, unwrapURLError(err))
	}
	if res.StatusCode >= 300 {
		defer res.Body.Close()
		e := &agentError{Status: res.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64*1024))
		_ = json.Unmarshal(b, e)
		return nil, e
	}
	return res, nil
}

func (c *client) secrets(ctx context.Context) (*Secrets, error) {
	res, err := c.do(ctx, c.http, "GET", "/v1/secrets", nil)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var s Secrets
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("NEMU_ERR_LAUNCHER_PROTOCOL: the agent's answer is not the expected JSON")
	}
	return &s, nil
}

func (c *client) ack(ctx context.Context, path string, version int64) error {
	body, _ := json.Marshal(map[string]interface{}{"path": path, "version": version})
	res, err := c.do(ctx, c.http, "POST", "/v1/ack", body)
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}

func unwrapURLError(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
