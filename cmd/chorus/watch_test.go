package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/test/testutil"
)

// startWatch runs `chorus watch` in-process until the test ends and
// returns its stdout and stderr as they grow.
func startWatch(t *testing.T, addr string, args ...string) (stdout, stderr *testutil.SyncBuffer) {
	t.Helper()
	stdout, stderr = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	root := newRootCmd()
	root.SetArgs(append([]string{"watch", "--http-addr", addr}, args...))
	root.SetOut(stdout)
	root.SetErr(stderr)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("watch ended with %v\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("watch did not stop within 10 s of its context being cancelled")
		}
	})
	return stdout, stderr
}

// jsonDocs decodes the stream of JSON values s holds.
func jsonDocs(t *testing.T, s string) []json.RawMessage {
	t.Helper()
	var docs []json.RawMessage
	dec := json.NewDecoder(strings.NewReader(s))
	for {
		var d json.RawMessage
		if err := dec.Decode(&d); err == io.EOF {
			return docs
		} else if err != nil {
			t.Fatalf("watch output is not a JSON stream: %v\n%s", err, s)
		}
		docs = append(docs, d)
	}
}

// waitDocs waits until the stream holds exactly n documents.
func waitDocs(t *testing.T, out *testutil.SyncBuffer, n int) []json.RawMessage {
	t.Helper()
	var docs []json.RawMessage
	testutil.Eventually(t, 10*time.Second, func() error {
		docs = jsonDocs(t, out.String())
		if len(docs) != n {
			return fmt.Errorf("%d results printed, want %d:\n%s", len(docs), n, out.String())
		}
		return nil
	})
	return docs
}

// ports returns the port of every instance in a service watch result.
func ports(t *testing.T, doc []byte) []int {
	t.Helper()
	var entries []api.ServiceEntry
	if err := json.Unmarshal(doc, &entries); err != nil {
		t.Fatalf("service watch result: %v\n%s", err, doc)
	}
	var ps []int
	for _, e := range entries {
		ps = append(ps, e.Service.Port)
	}
	return ps
}

func TestWatchPrintsOncePerChange(t *testing.T) {
	addr := startTestAgent(t, "alpha", nil)
	ag := apiClient(t, addr).Agent()
	reg := func(name string, port int) {
		t.Helper()
		if err := ag.ServiceRegister(&api.AgentServiceRegistration{Name: name, Port: port}); err != nil {
			t.Fatal(err)
		}
	}
	reg("web", 1)
	out, errOut := startWatch(t, addr, "--type", "service", "--service", "web")
	docs := waitDocs(t, out, 1)
	if p := ports(t, docs[0]); len(p) != 1 || p[0] != 1 {
		t.Fatalf("first result: %s", docs[0])
	}

	// Neither an unrelated service nor the same registration again
	// changes web's result: the next result printed is the port change.
	reg("other", 9)
	reg("web", 1)
	reg("web", 2)
	docs = waitDocs(t, out, 2)
	if p := ports(t, docs[1]); len(p) != 1 || p[0] != 2 {
		t.Fatalf("second result: %s", docs[1])
	}

	// A burst of changes is reported with its last state, and no result
	// printed equals the one before it.
	for port := 3; port <= 7; port++ {
		reg("web", port)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		docs = jsonDocs(t, out.String())
		if p := ports(t, docs[len(docs)-1]); len(p) != 1 || p[0] != 7 {
			return fmt.Errorf("last result %s, want port 7", docs[len(docs)-1])
		}
		return nil
	})
	for i := 1; i < len(docs); i++ {
		if bytes.Equal(docs[i], docs[i-1]) {
			t.Fatalf("result %d printed twice:\n%s", i, docs[i])
		}
	}
	t.Logf("a burst of 5 changes printed %d results", len(docs)-2)

	if err := ag.ServiceDeregister("web"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		docs = jsonDocs(t, out.String())
		if string(docs[len(docs)-1]) != "[]" {
			return fmt.Errorf("no empty result after deregistration: %s", docs[len(docs)-1])
		}
		return nil
	})
	if errOut.String() != "" {
		t.Fatalf("watch stderr: %s", errOut.String())
	}
}

func TestWatchHandler(t *testing.T) {
	addr := startTestAgent(t, "alpha", nil)
	ag := apiClient(t, addr).Agent()
	dir := t.TempDir()
	okFile, failFile := filepath.Join(dir, "ok.jsonl"), filepath.Join(dir, "fail.jsonl")
	if err := ag.ServiceRegister(&api.AgentServiceRegistration{Name: "web", Port: 1}); err != nil {
		t.Fatal(err)
	}
	okOut, _ := startWatch(t, addr, "--type", "services", "--", "sh", "-c", `cat >> "$0"; echo >> "$0"; echo handled`, okFile)
	_, failErr := startWatch(t, addr, "--type", "checks", "--state", "any", "--", "sh", "-c", `cat >> "$0"; echo >> "$0"; echo boom; exit 7`, failFile)

	// lines waits until file holds n lines and returns them.
	lines := func(file string, n int) []string {
		t.Helper()
		var ls []string
		testutil.Eventually(t, 10*time.Second, func() error {
			b, _ := os.ReadFile(file)
			ls = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(b) == 0 {
				ls = nil
			}
			if len(ls) != n {
				return fmt.Errorf("%s has %d lines, want %d", file, len(ls), n)
			}
			return nil
		})
		return ls
	}
	ok := lines(okFile, 1)
	var names map[string][]string
	if err := json.Unmarshal([]byte(ok[0]), &names); err != nil || names["web"] == nil {
		t.Fatalf("handler stdin %q: %v", ok[0], err)
	}
	lines(failFile, 1)

	// A new service with a check changes both results; the failing handler
	// runs again: its failure did not stop the watch.
	err := ag.ServiceRegister(&api.AgentServiceRegistration{Name: "api", Port: 2, Check: &api.AgentServiceCheck{TTL: "1m"}})
	if err != nil {
		t.Fatal(err)
	}
	ok = lines(okFile, 2)
	if err := json.Unmarshal([]byte(ok[1]), &names); err != nil || names["api"] == nil {
		t.Fatalf("handler stdin after the change %q: %v", ok[1], err)
	}
	fail := lines(failFile, 2)
	var checks []api.HealthCheck
	if err := json.Unmarshal([]byte(fail[1]), &checks); err != nil || len(checks) != 2 {
		t.Fatalf("failing handler's stdin after the change %q: %v", fail[1], err)
	}
	if n := strings.Count(okOut.String(), "handled\n"); n != 2 {
		t.Fatalf("handler output printed %d times, want 2:\n%s", n, okOut.String())
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if s := failErr.String(); strings.Count(s, "with status 7") != 2 || strings.Count(s, "output:\nboom\n") != 2 {
			return fmt.Errorf("failing handler not reported twice with its status and output:\n%s", s)
		}
		return nil
	})
}
