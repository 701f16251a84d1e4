package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A path Chorus does not serve is a 501 naming what is not provided; a
// path it serves, asked with a method it does not take, a 405 with Allow.
func TestNotProvided(t *testing.T) {
	mux := http.NewServeMux()
	ok := func(http.ResponseWriter, *http.Request) {}
	mux.HandleFunc("GET /v1/agent/self", ok)
	mux.HandleFunc("PUT /v1/agent/leave", ok)
	mux.HandleFunc("GET /v1/agent/service/{id}", ok)
	mux.HandleFunc("PUT /v1/agent/service/register", ok)
	mux.HandleFunc("/v1/", ok)
	for _, tc := range []struct {
		method, path string
		code         int
		want, allow  string
	}{
		{"GET", "/v1/kv/foo", 501, "Chorus does not provide the KV store", ""},
		{"PUT", "/v1/operator/raft/peer", 501, "Raft", ""},
		{"GET", "/v1/operator/autopilot/health", 501, "Autopilot", ""},
		{"GET", "/v1/nothing/here", 501, "this endpoint", ""},
		{"GET", "/v1/agent/leave", 405, "use PUT", "PUT"},
		{"POST", "/v1/agent/self", 405, "use GET", "GET"},
		{"DELETE", "/v1/agent/service/web", 405, "GET", "GET"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		err := notProvided(mux, r)
		if err == nil || statusOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v (status %d), want %d naming %q", tc.method, tc.path, err, statusOf(err), tc.code, tc.want)
		}
		if me, isMethod := err.(*methodError); isMethod != (tc.allow != "") || (isMethod && me.allow != tc.allow) {
			t.Errorf("%s %s: %#v, want Allow %q", tc.method, tc.path, err, tc.allow)
		}
	}
}
