package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/prometheus/client_golang/prometheus"
)

func TestQuestionKey(t *testing.T) {
	key := func(target string) string {
		return questionKey(httptest.NewRequest("GET", target, nil))
	}
	same := []struct{ name, a, b string }{
		{"blocking and consistency parameters", "/v1/health/service/web", "/v1/health/service/web?index=7&wait=5m&stale&consistent&cached&pretty&hash=ab&token=x&near=_agent"},
		{"unknown parameters", "/v1/catalog/nodes", "/v1/catalog/nodes?junk=" + strings.Repeat("x", 4000) + "&more=1"},
		{"tag order and repeats", "/v1/health/service/web?tag=a&tag=b", "/v1/health/service/web?tag=b&tag=a&tag=b"},
		{"only the first filter is read", "/v1/catalog/nodes?filter=Node%3D%3D%22a%22", "/v1/catalog/nodes?filter=Node%3D%3D%22a%22&filter=other"},
	}
	for _, tc := range same {
		t.Run("same: "+tc.name, func(t *testing.T) {
			if key(tc.a) != key(tc.b) {
				t.Errorf("%s and %s have different keys", tc.a, tc.b)
			}
		})
	}
	differ := []struct{ name, a, b string }{
		{"path", "/v1/health/service/web", "/v1/health/service/db"},
		{"filter", "/v1/catalog/nodes?filter=a", "/v1/catalog/nodes?filter=b"},
		{"filter order", "/v1/catalog/nodes?filter=a&filter=b", "/v1/catalog/nodes?filter=b&filter=a"},
		{"node-meta order (the last wins)", "/v1/catalog/nodes?node-meta=k:1&node-meta=k:2", "/v1/catalog/nodes?node-meta=k:2&node-meta=k:1"},
		{"passing", "/v1/health/service/web", "/v1/health/service/web?passing"},
		{"wan", "/v1/agent/members", "/v1/agent/members?wan=1"},
		{"dc (a remote one: checkDC drops this agent's own)", "/v1/health/service/web", "/v1/health/service/web?dc=dc2"},
		{"failover", "/v1/health/service/web?passing", "/v1/health/service/web?passing&failover=1"},
		{"tags", "/v1/health/service/web?tag=a", "/v1/health/service/web?tag=a&tag=b"},
		{"parts do not run into each other", "/v1/health/service/web?tag=a&tag=b", "/v1/health/service/web?tag=a%00b"},
	}
	for _, tc := range differ {
		t.Run("differ: "+tc.name, func(t *testing.T) {
			if key(tc.a) == key(tc.b) {
				t.Errorf("%s and %s share a key", tc.a, tc.b)
			}
		})
	}
	if n := len(key("/v1/catalog/nodes?filter=" + strings.Repeat("y", 10000))); n != 32 {
		t.Errorf("key of a long request is %d bytes, want 32", n)
	}
}

// TestIndexTableBounded floods a small table with distinct keys: it never
// holds more than twice its size, its byte estimate stays within the
// bound, and a key seen again after being forgotten does not go back to
// an index below one handed out before.
func TestIndexTableBounded(t *testing.T) {
	const size = 1000
	tab := newIndexTable(size)
	first := questionKey(httptest.NewRequest("GET", "/v1/catalog/nodes", nil))
	_, idx0, _ := tab.get(first, 10, 10, 1)
	maxEntries, maxBytes := 0, 0
	for i := range 50 * size {
		snap := uint64(10 + i)
		k := questionKey(httptest.NewRequest("GET", fmt.Sprintf("/v1/catalog/nodes?filter=%d", i), nil))
		tab.get(k, snap, snap, uint64(i))
		n, b := tab.size()
		maxEntries, maxBytes = max(maxEntries, n), max(maxBytes, b)
	}
	if maxEntries > 2*size {
		t.Errorf("table held %d entries, bound %d", maxEntries, 2*size)
	}
	if bound := 2 * size * (32 + indexEntryOverhead); maxBytes > bound {
		t.Errorf("table held ~%d bytes, bound %d", maxBytes, bound)
	}
	_, idx, ok := tab.get(first, 10+50*size, 10, 2)
	if !ok || idx < idx0 || idx < tab.floor {
		t.Errorf("forgotten key came back at index %d (ok %v), had %d, floor %d", idx, ok, idx0, tab.floor)
	}
}

// TestIndexTableSweepIsAmortised checks that a full table of entries
// read recently (none idle) is not scanned on every insertion.
func TestIndexTableSweepIsAmortised(t *testing.T) {
	const size = 4096
	tab := newIndexTable(size)
	start := time.Now()
	for i := range 2*size - 1 {
		tab.get(fmt.Sprint(i), uint64(i+1), uint64(i+1), 1)
	}
	// A scan per insertion past size would be ~size² = 16M visits; spaced
	// sweeps make it ~8·size.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("filling the table took %v", d)
	}
	if n, _ := tab.size(); n != 2*size-1 {
		t.Errorf("%d entries after %d busy insertions, want all kept", n, 2*size-1)
	}
}

func TestRenderCacheByteBudget(t *testing.T) {
	c := newRenderCache()
	big := make([]byte, maxRenderBytes/4+1)
	renders := 0
	render := func() (rendered, error) { renders++; return rendered{body: big}, nil }
	for i := range 8 {
		c.get(nil, fmt.Sprint(i), render)
	}
	if len(c.entries) > 4+1 || c.bytes > maxRenderBytes+len(big) {
		t.Errorf("cache holds %d entries, %d bytes; budget %d bytes", len(c.entries), c.bytes, maxRenderBytes)
	}
	if renders != 8 {
		t.Errorf("%d renders, want 8", renders)
	}
}

// bareServer is a Server with only what the request guard, the error
// writer and the logging need.
func bareServer(t *testing.T, logger *slog.Logger) *Server {
	t.Helper()
	a := &Server{logger: logger, logs: newRateLog(logEvery), bodyTimeout: defaultBodyTimeout, results: newIndexTable(16)}
	a.metrics = newMetrics(prometheus.NewPedanticRegistry(), func() float64 { return 0 }, a.results.size)
	return a
}

// serveReal serves h on 127.0.0.1:0 with the agent's server settings.
func serveReal(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// TestSlowBodyIsCut sends bodies one byte a second over raw TCP: the
// server answers 408 and closes each connection at the body deadline,
// whether or not the handler reads the body, while a request without a
// body is held for longer than that deadline undisturbed.
func TestSlowBodyIsCut(t *testing.T) {
	a := bareServer(t, slog.New(slog.DiscardHandler))
	a.bodyTimeout = 700 * time.Millisecond
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /read", func(w http.ResponseWriter, r *http.Request) {
		if _, err := readBody(r); err != nil {
			a.writeError(w, r, err, time.Now())
		}
	})
	mux.HandleFunc("PUT /ignore", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * a.bodyTimeout):
			io.WriteString(w, "waited")
		case <-r.Context().Done():
		}
	})
	addr := serveReal(t, a.guard(mux))

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 5 {
		path := []string{"/read", "/ignore"}[i%2]
		wg.Go(func() { errs <- slowBody(addr, path, 10*a.bodyTimeout) })
	}
	wg.Go(func() {
		resp, err := http.Get("http://" + addr + "/wait")
		if err != nil {
			errs <- fmt.Errorf("bodiless request past the body deadline: %v", err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "waited" {
			errs <- fmt.Errorf("bodiless request past the body deadline answered %q", b)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// slowBody announces a 100-byte body on path and sends it one byte per
// 100 ms, reading what comes back; it fails if the connection is still
// open after limit.
func slowBody(addr, path string, limit time.Duration) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n", path)
	closed := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(bufio.NewReader(conn))
		closed <- string(b)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-closed:
			if path == "/read" && !strings.HasPrefix(got, "HTTP/1.1 408") {
				return fmt.Errorf("%s: closed after %v with %q, want a 408", path, time.Since(start), got)
			}
			return nil
		case <-tick.C:
			if time.Since(start) > limit {
				return fmt.Errorf("%s: connection still open after %v", path, time.Since(start))
			}
			conn.Write([]byte("x"))
		}
	}
}

func TestURITooLong(t *testing.T) {
	a := bareServer(t, slog.New(slog.DiscardHandler))
	addr := serveReal(t, a.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	for _, tc := range []struct {
		n    int
		want int
	}{{maxURIBytes - 100, 200}, {maxURIBytes + 1, 414}, {60 << 10, 414}} {
		target := "/v1/catalog/nodes?x=" + strings.Repeat("a", tc.n-len("/v1/catalog/nodes?x="))
		resp, err := http.Get("http://" + addr + target)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d-byte target: %d, want %d", tc.n, resp.StatusCode, tc.want)
		}
		if tc.want == 414 && !strings.Contains(string(b), `"error":"request target is`) {
			t.Errorf("414 without a JSON message: %s", b)
		}
	}
}

// recordHandler keeps the records logged through it.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// levels counts the records at or above info, and returns the
// "suppressed" attribute of the last such.
func (h *recordHandler) loud() (n int, suppressed int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Level < slog.LevelInfo {
			continue
		}
		n++
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				suppressed = a.Value.Int64()
			}
			return true
		})
	}
	return n, suppressed
}

// TestFailureLogsAreRateLimited: 4xx answers never log above debug; 5xx
// log one line per interval, the next carrying the count suppressed;
// net/http's connection errors likewise.
func TestFailureLogsAreRateLimited(t *testing.T) {
	rec := &recordHandler{}
	a := bareServer(t, slog.New(rec))
	now := time.Unix(1000, 0)
	a.logs.now = func() time.Time { return now }
	r := httptest.NewRequest("PUT", "/v1/agent/service/register", nil)
	for range 1000 {
		a.writeError(httptest.NewRecorder(), r, errorf(http.StatusBadRequest, "bad"), now)
	}
	if n, _ := rec.loud(); n != 0 {
		t.Fatalf("1000 client errors logged %d lines at info or above", n)
	}
	for range 1000 {
		a.writeError(httptest.NewRecorder(), r, errors.New("disk on fire"), now)
	}
	if n, _ := rec.loud(); n != 1 {
		t.Fatalf("1000 server errors in one instant logged %d lines at info or above, want 1", n)
	}
	now = now.Add(logEvery)
	a.writeError(httptest.NewRecorder(), r, errors.New("disk on fire"), now)
	if n, s := rec.loud(); n != 2 || s != 999 {
		t.Fatalf("after the interval: %d loud lines, suppressed=%d; want 2 and 999", n, s)
	}
	el := a.ErrorLog()
	for range 100 {
		el.Printf("http: TLS handshake error from 127.0.0.1:1: EOF")
	}
	if n, _ := rec.loud(); n != 3 {
		t.Fatalf("100 connection errors: %d loud lines in all, want 3", n)
	}
}

func TestPathID(t *testing.T) {
	for _, id := range []string{".", ".."} {
		err := pathID("ID", id)
		if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `ID "`+id+`"`) {
			t.Errorf("pathID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "web", "...", ".web", "a.b"} {
		if err := pathID("ID", id); err != nil {
			t.Errorf("pathID(%q) = %v", id, err)
		}
	}
}

// FuzzQuestionKey: for any query string, the key is 32 bytes, and adding
// a parameter that does not change the answer leaves it unchanged.
func FuzzQuestionKey(f *testing.F) {
	f.Add("filter=Node%3D%3D%22a%22&tag=x&tag=y&node-meta=k:v&passing")
	f.Add("index=5&wait=1s&junk=" + strings.Repeat("%", 3))
	f.Add("tag=a%00b&tag=")
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/v1/health/service/web", nil)
		r.URL.RawQuery = raw
		k := questionKey(r)
		if len(k) != 32 {
			t.Fatalf("key of %q is %d bytes", raw, len(k))
		}
		r2 := httptest.NewRequest("GET", "/v1/health/service/web", nil)
		r2.URL.RawQuery = raw + "&index=9&unrelated=1"
		if strings.Contains(raw, "unrelated") || strings.Contains(raw, "index") {
			return
		}
		if questionKey(r2) != k {
			t.Fatalf("index and an unknown parameter changed the key of %q", raw)
		}
	})
}

// TestStatusOfLocalErrors: local's errors map onto the status that names
// the client's problem; a registration that would make the node's record
// larger than peers accept is a 413, never a 200 or a 500.
func TestStatusOfLocalErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("service %q: %w", "x", local.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("bad port: %w", local.ErrInvalid), http.StatusBadRequest},
		{fmt.Errorf("not a TTL check: %w", local.ErrNotTTL), http.StatusBadRequest},
		{fmt.Errorf("record would be 17000000 bytes: %w", local.ErrTooLarge), http.StatusRequestEntityTooLarge},
		{errors.New("disk full"), http.StatusInternalServerError},
	} {
		if got := statusOf(c.err); got != c.want {
			t.Errorf("statusOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestLogFailureLevels: the agent's own failures (5xx) are logged at
// error level; a client's bad request (4xx) and a request for a Consul
// feature Chorus does not provide (501) only at debug level.
func TestLogFailureLevels(t *testing.T) {
	var buf bytes.Buffer
	a := &Server{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a.logs = newRateLog(logEvery)
	for _, c := range []struct {
		code  int
		level string
	}{{400, "DEBUG"}, {404, "DEBUG"}, {501, "DEBUG"}, {500, "ERROR"}} {
		buf.Reset()
		a.logFailure("GET", "/v1/x", c.code, errors.New("e"))
		if !strings.Contains(buf.String(), "level="+c.level) {
			t.Errorf("%d logged as %q, want level %s", c.code, buf.String(), c.level)
		}
	}
}
