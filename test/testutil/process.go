package testutil

import (
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Agent is a chorus agent running as a real process on 127.0.0.1.
type Agent struct {
	Cmd      *exec.Cmd
	DataDir  string
	HTTPPort int
	DNSPort  int
	SerfPort int
	Output   *SyncBuffer
	exited   chan struct{}
	ExitErr  error
}

// AgentOptions configure StartAgent.
type AgentOptions struct {
	Node    string
	DataDir string // default: a new temp dir
	Args    []string
	Env     []string
	// Dev runs the agent with --dev and no --data-dir.
	Dev bool
	// Ports, when non-zero, are used instead of fresh free ports.
	HTTPPort, DNSPort, SerfPort int
	// Token, when set, is sent with the start-up wait's requests (for an
	// agent whose ACL denies anonymous reads).
	Token string
}

// StartAgent starts the chorus binary as `chorus agent` on free ports and
// waits until its HTTP API answers. The process is killed at cleanup.
func StartAgent(t testing.TB, opt AgentOptions) *Agent {
	t.Helper()
	bin := Binary(t)
	if opt.DataDir == "" {
		opt.DataDir = t.TempDir()
	}
	if opt.Node == "" {
		opt.Node = "node1"
	}
	a := &Agent{DataDir: opt.DataDir, HTTPPort: opt.HTTPPort, DNSPort: opt.DNSPort, SerfPort: opt.SerfPort, Output: &SyncBuffer{}, exited: make(chan struct{})}
	if a.HTTPPort == 0 {
		a.HTTPPort = FreePort(t)
	}
	if a.DNSPort == 0 {
		a.DNSPort = FreePort(t)
	}
	if a.SerfPort == 0 {
		a.SerfPort = FreePort(t)
	}
	args := []string{"agent", "--node", opt.Node, "--data-dir", opt.DataDir}
	if opt.Dev {
		args = []string{"agent", "--dev", "--node", opt.Node}
	}
	args = append(args, "--bind", "127.0.0.1", "--client", "127.0.0.1",
		"--http-port", strconv.Itoa(a.HTTPPort), "--dns-port", strconv.Itoa(a.DNSPort),
		"--serf-port", strconv.Itoa(a.SerfPort))
	args = append(args, opt.Args...)
	a.Cmd = exec.Command(bin, args...)
	a.Cmd.Env = append(a.Cmd.Environ(), opt.Env...)
	a.Cmd.Stdout, a.Cmd.Stderr = a.Output, a.Output
	if err := a.Cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() {
		a.ExitErr = a.Cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() {
		a.Cmd.Process.Kill()
		<-a.exited
		if t.Failed() {
			t.Logf("agent %s output:\n%s", opt.Node, a.Output.String())
		}
	})
	Eventually(t, 20*time.Second, func() error {
		select {
		case <-a.exited:
			t.Fatalf("agent exited early: %v\n%s", a.ExitErr, a.Output.String())
		default:
		}
		req, err := http.NewRequest("GET", a.URL("/v1/agent/self"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if opt.Token != "" {
			req.Header.Set("X-Consul-Token", opt.Token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return a
}

// URL returns the agent's HTTP URL for path.
func (a *Agent) URL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(a.HTTPPort) + path
}

// DNSAddr returns the agent's DNS address.
func (a *Agent) DNSAddr() string { return "127.0.0.1:" + strconv.Itoa(a.DNSPort) }

// Signal sends sig to the process.
func (a *Agent) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := a.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code.
func (a *Agent) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(timeout):
		t.Fatalf("agent did not exit within %v\n%s", timeout, a.Output.String())
	}
	if a.ExitErr == nil {
		return 0
	}
	if ee, ok := a.ExitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
