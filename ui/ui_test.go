package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestHandlerServesThePage(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html", `<script src="app.js" defer></script>`},
		{"/ui/app.js", "text/javascript", "X-Consul-Token"},
		{"/ui/style.css", "text/css", "prefers-color-scheme: dark"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := get(t, h, tc.path, nil)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			for k, want := range map[string]string{
				"Content-Security-Policy": contentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           "no-cache",
			} {
				if got := w.Header().Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			tag := w.Header().Get("ETag")
			if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(tag) {
				t.Fatalf("ETag %q", tag)
			}
			if w := get(t, h, tc.path, map[string]string{"If-None-Match": tag}); w.Code != http.StatusNotModified {
				t.Errorf("If-None-Match with the ETag: status %d, want 304", w.Code)
			}
			if w := get(t, h, tc.path, map[string]string{"If-None-Match": `"other"`}); w.Code != 200 {
				t.Errorf("If-None-Match with another ETag: status %d, want 200", w.Code)
			}
		})
	}
	if w := get(t, h, "/ui/missing.js", nil); w.Code != http.StatusNotFound {
		t.Errorf("missing file: status %d, want 404", w.Code)
	}
}

// TestPageIsSelfContained holds the page to its rules: every file it
// references is embedded, nothing is loaded from elsewhere (no CDN, no
// web font), no inline script or style (the CSP forbids them), and it
// stays a few small files.
func TestPageIsSelfContained(t *testing.T) {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		t.Fatal(err)
	}
	html, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(string(html), -1)
	if len(refs) < 2 {
		t.Fatalf("index.html references %d files", len(refs))
	}
	h := Handler()
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "#"), ref == "data:,":
			continue
		case strings.Contains(ref, ":"), strings.HasPrefix(ref, "/"):
			t.Errorf("index.html loads %q from outside the page", ref)
			continue
		}
		if w := get(t, h, "/ui/"+ref, nil); w.Code != 200 {
			t.Errorf("%s: status %d", ref, w.Code)
		}
	}
	if m := regexp.MustCompile(`<script>|<style|\sstyle=|\son[a-z]+=`).FindString(string(html)); m != "" {
		t.Errorf("index.html has inline %q", m)
	}
	total := 0
	err = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, path)
		if err != nil {
			return err
		}
		total += len(b)
		for _, bad := range []string{"@import", "@font-face", "url(http", "https://", "http://"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 64<<10 {
		t.Errorf("the page's files hold %d bytes; keep it small", total)
	}
}
