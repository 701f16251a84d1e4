package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
	"github.com/hashicorp/consul/api"
)

// hardeningKey returns a fresh gossip key, base64-encoded.
func hardeningKey(t testing.TB) string {
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// gauge reads an unlabelled metric's value from an agent's /metrics.
func gauge(t testing.TB, a *Agent, name string) float64 {
	t.Helper()
	_, body := do(t, a, "GET", "/metrics", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// flood hands n GETs to the agent's API handler in-process, from 4
// goroutines, target(i) giving each one's path and raw query, and fails
// unless every answer has status want. (In-process, because what is
// measured is the API's memory, not the cost of parsing 60 KB request
// lines under the race detector.)
func flood(t *testing.T, a *Agent, n, want int, target func(i int) (path, rawQuery string)) {
	t.Helper()
	start := time.Now()
	h := a.api.Handler()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				path, raw := target(i)
				uri := path + "?" + raw
				r := &http.Request{Method: "GET", URL: &url.URL{Path: path, RawQuery: uri[len(path)+1:]}, RequestURI: uri,
					Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: http.NoBody,
					Host: a.HTTPAddr(), RemoteAddr: "127.0.0.1:1"}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r.WithContext(context.Background()))
				if rec.Code != want {
					errs <- fmt.Errorf("request %d: %d %s, want %d", i, rec.Code, rec.Body.Bytes(), want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d requests in %v", n, time.Since(start))
}

// TestHTTPQueryStringFlood is the finding "18,000 GETs with unique 60 KB
// query strings took RSS from 74 MB to 2.19 GB". Targets over 16 KiB are
// refused with 414; under it, parameters that do not change the answer do
// not make new questions, and distinct answers (unique filters) cost a
// bounded, fixed-size entry each.
func TestHTTPQueryStringFlood(t *testing.T) {
	a := startAgent(t, testConfig(t, "flood"))
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	const n = 18000
	before := liveHeap()

	// Unique 60 KB query strings: windows of one random text, so that
	// making them costs the test nothing.
	text := make([]byte, 60<<10+n)
	for i := range text {
		text[i] = 'a' + byte(mrand.IntN(26))
	}
	big := string(text)
	flood(t, a, n, http.StatusRequestURITooLong, func(i int) (string, string) {
		return "/v1/health/service/web", big[i : i+60<<10]
	})
	big = big[:60<<10]
	code, body := do(t, a, "GET", "/v1/catalog/nodes?x="+big, nil)
	var msg struct{ Error string }
	if json.Unmarshal(body, &msg); code != 414 || !strings.Contains(msg.Error, "16384") {
		t.Fatalf("60 KB target: %d %s", code, body)
	}

	junk := strings.Repeat("j", 4<<10)
	flood(t, a, n, http.StatusOK, func(i int) (string, string) {
		return "/v1/health/service/web", fmt.Sprintf("junk%d=%s&wait=1s", i, junk)
	})
	if q := gauge(t, a, "chorus_http_question_indexes"); q > 10 {
		t.Fatalf("%d unique junk parameters made %v questions", n, q)
	}
	filter := url.QueryEscape(`Service.Port != 1 and Node.Node != "` + strings.Repeat("n", 200))
	const filters = n / 4
	flood(t, a, filters, http.StatusOK, func(i int) (string, string) {
		return "/v1/health/service/web", fmt.Sprintf("filter=%s%d%%22", filter, i)
	})
	grown := int64(liveHeap()) - int64(before)
	entries := gauge(t, a, "chorus_http_question_indexes")
	bytes := gauge(t, a, "chorus_http_question_index_bytes")
	t.Logf("after %d GETs of 60 KB (414), %d of 4 KB with unique parameters and %d with unique filters: %v questions, ~%.1f MB of indexes, live heap %+.1f MB",
		n, n, filters, entries, bytes/1e6, float64(grown)/1e6)
	// Each distinct answer costs one entry with a 32-byte key; the table
	// holds at most 2×16,384 (TestIndexTableBounded in agent/httpapi).
	if entries < filters || entries > filters+10 {
		t.Errorf("%v questions after %d distinct filters, want %d–%d", entries, filters, filters, filters+10)
	}
	if bytes > 2<<14*(32+128) {
		t.Errorf("question indexes hold ~%v bytes, bound %d", bytes, 2<<14*(32+128))
	}
	if grown > 64<<20 {
		t.Errorf("live heap grew by %.1f MB", float64(grown)/1e6)
	}

	// Blocking queries still work: one parked on the service wakes at a change.
	var idx string
	resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/health/service/web")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	idx = resp.Header.Get("X-Consul-Index")
	woke := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/health/service/web?wait=30s&index=" + idx)
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("X-Consul-Index") == idx {
				err = fmt.Errorf("woke with the same index %s", idx)
			}
		}
		woke <- err
	}()
	waitParked(t, a, 1)
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","ID":"web2","Port":81}`)
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query not woken by a change after the flood")
	}
}

// TestHTTPSlowBody is the finding "5 connections sending 1 byte/s stayed
// open > 60 s": each gets 408 and is closed at the 10 s body deadline,
// while a blocking query (no body) outlives that deadline.
func TestHTTPSlowBody(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testConfig(t, "slow"))
	const deadline, slack = 10 * time.Second, 5 * time.Second
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 5 {
		wg.Go(func() {
			conn, err := net.Dial("tcp", a.HTTPAddr())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			start := time.Now()
			fmt.Fprintf(conn, "PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n")
			answer := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(bufio.NewReader(conn))
				answer <- string(b)
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case got := <-answer:
					took := time.Since(start)
					if !strings.HasPrefix(got, "HTTP/1.1 408") || took < deadline-time.Second {
						errs <- fmt.Errorf("connection %d: closed after %v with %q", i, took, got)
					}
					return
				case <-tick.C:
					if time.Since(start) > deadline+slack {
						errs <- fmt.Errorf("connection %d still open after %v", i, time.Since(start))
						return
					}
					conn.Write([]byte("{"))
				}
			}
		})
	}
	wg.Go(func() {
		start := time.Now()
		resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/catalog/services?index=" + strconv.FormatUint(a.Store().Snapshot().ServicesIndex(), 10) + "&wait=12s")
		if err != nil {
			errs <- fmt.Errorf("blocking query: %v", err)
			return
		}
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != 200 || took < 12*time.Second {
			errs <- fmt.Errorf("blocking query answered %d after %v, want 200 after its 12 s wait", resp.StatusCode, took)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestKeyringNeedsWrite is the finding "a read token reads the gossip
// key": the keyring's list needs a write token, and nothing a read token
// can see carries key material.
func TestKeyringNeedsWrite(t *testing.T) {
	const readTok, writeTok = "read-token-0123456789", "write-token-0123456789"
	key := hardeningKey(t)
	cfg := testConfig(t, "keys")
	cfg.Encrypt = key
	cfg.ACL = httpapi.ACLConfig{Enabled: true, DefaultPolicy: httpapi.PolicyDeny, Tokens: []httpapi.ACLToken{
		{Secret: readTok, Policy: httpapi.PolicyRead}, {Secret: writeTok, Policy: httpapi.PolicyWrite}}}
	a := startAgent(t, cfg)
	raw, _ := base64.StdEncoding.DecodeString(key)
	spellings := []string{key, base64.RawStdEncoding.EncodeToString(raw), base64.URLEncoding.EncodeToString(raw), hex.EncodeToString(raw), string(raw)}

	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+path, nil)
		req.Header.Set("X-Consul-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tok := range []string{readTok, "", "unknown-token-0123456789"} {
		if code, body := get("/v1/operator/keyring", tok); code != 403 || !strings.Contains(body, "keyring") {
			t.Errorf("keyring list with token %q: %d %s", tok, code, body)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		code, body := get("/v1/operator/keyring", writeTok)
		if code != 200 || !strings.Contains(body, key) {
			return fmt.Errorf("keyring list with the write token: %d %s", code, body)
		}
		return nil
	})
	for _, path := range []string{"/v1/agent/self", "/v1/agent/members", "/v1/agent/host", "/v1/catalog/nodes",
		"/v1/catalog/node/keys", "/v1/health/node/keys", "/v1/agent/services", "/v1/agent/checks", "/metrics"} {
		code, body := get(path, readTok)
		if code != 200 {
			t.Errorf("%s with the read token: %d", path, code)
		}
		for _, s := range spellings {
			if strings.Contains(body, s) {
				t.Errorf("%s shows the gossip key to a read token", path)
			}
		}
	}
}

// TestKeyringRemovePrimary: removing the primary key is the client's
// mistake (400 saying what to do), not a server failure.
func TestKeyringRemovePrimary(t *testing.T) {
	key1, key2 := hardeningKey(t), hardeningKey(t)
	cfg := testConfig(t, "primary")
	cfg.Encrypt = key1
	a := startAgent(t, cfg)
	code, body := do(t, a, "DELETE", "/v1/operator/keyring", `{"Key":"`+key1+`"}`)
	var msg struct{ Error string }
	if json.Unmarshal(body, &msg); code != 400 || !strings.Contains(msg.Error, "primary key") || !strings.Contains(msg.Error, "PUT /v1/operator/keyring") {
		t.Fatalf("removing the primary key: %d %s", code, body)
	}
	mustDo(t, a, "POST", "/v1/operator/keyring", `{"Key":"`+key2+`"}`)
	mustDo(t, a, "DELETE", "/v1/operator/keyring", `{"Key":"`+key2+`"}`)
	mustDo(t, a, "POST", "/v1/operator/keyring", `{"Key":"`+key2+`"}`)
	mustDo(t, a, "PUT", "/v1/operator/keyring", `{"Key":"`+key2+`"}`)
	mustDo(t, a, "DELETE", "/v1/operator/keyring", `{"Key":"`+key1+`"}`)
	if code, body := do(t, a, "DELETE", "/v1/operator/keyring", `{"Key":"`+key2+`"}`); code != 400 {
		t.Fatalf("removing the new primary key: %d %s", code, body)
	}
}

// TestHTTPUnicodeMessages: a 400 or 501 message quoting the request keeps
// its characters as sent (UTF-8 in the JSON body).
func TestHTTPUnicodeMessages(t *testing.T) {
	a := startAgent(t, testConfig(t, "unicode"))
	for _, tc := range []struct {
		path string
		code int
		want string // in the decoded message
		word string // as UTF-8 in the raw body
	}{
		{"/v1/health/state/" + url.PathEscape("café-ß-東京"), 400, `state "café-ß-東京"`, "café-ß-東京"},
		{"/v1/catalog/nodes?filter=" + url.QueryEscape("Node == é"), 400, "'é'", "'é'"},
		{"/v1/kv/" + url.PathEscape("clé"), 501, "/v1/kv/clé", "/v1/kv/clé"},
	} {
		resp, err := http.Get("http://" + a.HTTPAddr() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var msg struct{ Error string }
		if err := json.Unmarshal(b, &msg); err != nil || resp.StatusCode != tc.code || !strings.Contains(msg.Error, tc.want) ||
			!strings.Contains(string(b), tc.word) || strings.Contains(msg.Error, "Ã") {
			t.Errorf("%s: %d %s (%v), want %d with %s", tc.path, resp.StatusCode, b, err, tc.code, tc.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", tc.path, ct)
		}
	}
}

// TestDotIDsRefused: "." and ".." cannot be named in a URL path, so they
// are refused at registration, naming the field, instead of making a
// service or check nobody can deregister.
func TestDotIDsRefused(t *testing.T) {
	a := startAgent(t, testConfig(t, "dots"))
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	for _, tc := range []struct {
		path, body, field string
	}{
		{"/v1/agent/service/register", `{"Name":"web","ID":"."}`, `ID "."`},
		{"/v1/agent/service/register", `{"Name":"web","ID":".."}`, `ID ".."`},
		{"/v1/agent/service/register", `{"Name":"web","ID":"w","Check":{"CheckID":"..","TTL":"10s"}}`, `Check.CheckID ".."`},
		{"/v1/agent/service/register", `{"Name":"web","ID":"w","Checks":[{"CheckID":"c","TTL":"10s"},{"ID":".","TTL":"10s"}]}`, `Checks[1].ID "."`},
		{"/v1/agent/check/register", `{"CheckID":".","TTL":"10s"}`, `CheckID "."`},
		{"/v1/agent/check/register", `{"Name":"..","TTL":"10s"}`, `Name ".."`},
		{"/v1/agent/check/register", `{"ID":"..","ServiceID":"web","TTL":"10s"}`, `ID ".."`},
		{"/v1/catalog/register", `{"Node":"ext","Address":"10.0.0.1","Service":{"ID":"..","Service":"db"}}`, `Service.ID ".."`},
		{"/v1/catalog/register", `{"Node":"ext","Address":"10.0.0.1","Service":{"Service":"db"},"Check":{"CheckID":".","Status":"passing"}}`, `CheckID "."`},
	} {
		code, body := do(t, a, "PUT", tc.path, tc.body)
		var msg struct{ Error string }
		if json.Unmarshal(body, &msg); code != 400 || !strings.Contains(msg.Error, tc.field) {
			t.Errorf("PUT %s %s: %d %s, want 400 naming %s", tc.path, tc.body, code, body, tc.field)
		}
	}
	// Nothing of them was registered; IDs merely containing dots still work.
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","ID":"web.1","Check":{"CheckID":"web.1.ttl","TTL":"10s"}}`)
	var svcs map[string]any
	json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/services", nil), &svcs)
	if len(svcs) != 2 || svcs["web.1"] == nil {
		t.Fatalf("services after the refusals: %v", svcs)
	}
	mustDo(t, a, "PUT", "/v1/agent/check/pass/web.1.ttl", nil)
	mustDo(t, a, "PUT", "/v1/agent/service/deregister/web.1", nil)
}

// TestRecordLimitAnswers413: registrations that would make the node's
// record larger than peers accept get a 413 naming the limit, and every
// registration that got a 200 reaches the peer (the failure: 200s
// past the limit, then peers frozen on the node for good).
func TestRecordLimitAnswers413(t *testing.T) {
	agents := startCluster(t, 2, nil)
	owner, peer := agents[0], agents[1]
	// The most meta a service may carry, ~40 KiB of JSON that compresses
	// little: about 400 such services fill a record.
	big := func(i int) string {
		meta := map[string]string{}
		for k := range local.MaxServiceMetaKeys {
			v := make([]byte, local.MaxServiceMetaValueBytes/2)
			binary.BigEndian.PutUint64(v, uint64(i*1000+k))
			for j := 8; j < len(v); j++ {
				v[j] = v[j-8]*31 + v[j-1] + byte(j)
			}
			meta[fmt.Sprintf("key-%03d-%s", k, strings.Repeat("k", local.MaxServiceMetaKeyBytes-8))] = hex.EncodeToString(v)
		}
		b, _ := json.Marshal(map[string]any{"ID": fmt.Sprintf("big-%04d", i), "Name": "big", "Port": 1, "Meta": meta})
		return string(b)
	}
	accepted := 0
	var code int
	var body []byte
	for i := 0; i < 600; i++ {
		code, body = do(t, owner, "PUT", "/v1/agent/service/register", big(i))
		if code != 200 {
			break
		}
		accepted++
	}
	if code != 413 || !strings.Contains(string(body), fmt.Sprint(catalog.MaxRecordSize)) {
		t.Fatalf("after %d registrations: %d %s, want 413 naming the limit", accepted, code, body)
	}
	t.Logf("413 after %d accepted registrations: %s", accepted, body)
	// Every accepted registration reaches the peer; room made by a
	// deregistration is used by a small service the peer sees too.
	mustDo(t, owner, "PUT", "/v1/agent/service/deregister/big-0000", nil)
	mustDo(t, owner, "PUT", "/v1/agent/service/register", `{"Name":"probe","Port":2}`)
	start := time.Now()
	waitDNS(t, []*Agent{peer}, "probe", 1, 60*time.Second)
	t.Logf("probe at the peer %v after its registration", time.Since(start))
	for _, l := range strings.Split(string(mustDo(t, peer, "GET", "/metrics", nil)), "\n") {
		if strings.HasPrefix(l, "chorus_sync_events_total") || strings.HasPrefix(l, "chorus_sync_messages_total") {
			t.Log(l)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		var entries []api.ServiceEntry
		json.Unmarshal(mustDo(t, peer, "GET", "/v1/health/service/big", nil), &entries)
		if len(entries) != accepted-1 {
			return fmt.Errorf("peer holds %d big instances, want %d", len(entries), accepted-1)
		}
		return nil
	})
}
