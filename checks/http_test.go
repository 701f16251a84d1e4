package checks

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

func TestHTTPCheck(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fine") })
	mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "slow down")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "boom")
	})
	mux.HandleFunc("/notfound", http.NotFound)
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-slow:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	closed := httptest.NewServer(mux)
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name       string
		def        Definition
		status     string
		wantOutput string // substring
	}{
		{"200", Definition{HTTP: srv.URL + "/ok"}, StatusPassing, "HTTP GET " + srv.URL + "/ok: 200 OK Output: fine"},
		{"201", Definition{HTTP: srv.URL + "/created"}, StatusPassing, ": 201 Created Output: "},
		{"429", Definition{HTTP: srv.URL + "/busy"}, StatusWarning, ": 429 Too Many Requests Output: slow down"},
		{"500", Definition{HTTP: srv.URL + "/fail"}, StatusCritical, ": 500 Internal Server Error Output: boom"},
		{"404", Definition{HTTP: srv.URL + "/notfound"}, StatusCritical, ": 404 Not Found Output: 404 page not found"},
		{"redirect followed", Definition{HTTP: srv.URL + "/redirect"}, StatusPassing, "200 OK Output: fine"},
		{"redirect not followed", Definition{HTTP: srv.URL + "/redirect", DisableRedirects: true}, StatusCritical, "302 Found"},
		{"slow", Definition{HTTP: srv.URL + "/slow", Timeout: 150 * time.Millisecond}, StatusCritical, "context deadline exceeded"},
		{"closed", Definition{HTTP: closedURL + "/ok"}, StatusCritical, "connection refused"},
	}
	m, _ := startManager(t, Config{})
	for _, tc := range tests {
		tc.def.ID = tc.name
		tc.def.Interval = 200 * time.Millisecond
		// Start from the opposite state so the expected one is a real transition.
		tc.def.Status = StatusPassing
		if tc.status == StatusPassing {
			tc.def.Status = StatusCritical
		}
		mustAdd(t, m, tc.def)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			waitOutput(t, m, tc.name, tc.status, tc.wantOutput, 10*time.Second)
		})
	}
}

// TestHTTPRequest checks what the server receives: method, headers, body,
// User-Agent, Host, and that no connection is kept open between probes.
func TestHTTPRequest(t *testing.T) {
	type seen struct {
		method, body, ua, accept, token, host string
		close                                 bool
	}
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, string(b), r.UserAgent(), r.Header.Get("Accept"), r.Header.Get("X-Token"), r.Host, r.Close})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	m, _ := startManager(t, Config{})
	mustAdd(t, m, Definition{
		ID: "post", HTTP: srv.URL + "/x", Method: "POST", Body: `{"ping":1}`,
		Header:   map[string][]string{"X-Token": {"secret"}, "Host": {"web.example"}},
		Interval: 100 * time.Millisecond,
	})
	testutil.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 2 {
			return fmt.Errorf("%d requests, want 2", len(got))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for _, s := range got[:2] {
		want := seen{"POST", `{"ping":1}`, UserAgent, "text/plain, text/*, */*", "secret", "web.example", true}
		if s != want {
			t.Errorf("request %+v, want %+v", s, want)
		}
	}
}

func TestHTTPOutputIsTruncated(t *testing.T) {
	body := strings.Repeat("a", 99) + "é" + strings.Repeat("b", 5000) // é straddles byte 100
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	t.Cleanup(srv.Close)

	def := Definition{HTTP: srv.URL, Interval: time.Second}
	p := newHTTPProber(def.withDefaults(), 100)
	status, out := p.probe(context.Background())
	if status != StatusPassing {
		t.Fatalf("status %s: %s", status, out)
	}
	_, kept, _ := strings.Cut(out, "Output: ")
	if want := strings.Repeat("a", 99); kept != want {
		t.Errorf("kept %q (%d bytes), want the first 99 bytes without the cut character", kept, len(kept))
	}

	p = newHTTPProber(def.withDefaults(), DefaultOutputMaxSize)
	_, out = p.probe(context.Background())
	_, kept, _ = strings.Cut(out, "Output: ")
	if len(kept) != DefaultOutputMaxSize || !strings.HasPrefix(kept, strings.Repeat("a", 99)+"é") {
		t.Errorf("kept %d bytes, want the first %d", len(kept), DefaultOutputMaxSize)
	}
}

func TestHTTPSCheck(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls ok") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// A TLS handshake under -race can take longer than 100ms: give it time.
	m, _ := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "skip", HTTP: srv.URL, TLSSkipVerify: true, Interval: 500 * time.Millisecond})
	mustAdd(t, m, Definition{ID: "verify", HTTP: srv.URL, Interval: 500 * time.Millisecond, Status: StatusPassing})
	waitOutput(t, m, "skip", StatusPassing, "tls ok", 10*time.Second)
	waitOutput(t, m, "verify", StatusCritical, "certificate", 10*time.Second)
}
