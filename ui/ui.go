// Package ui serves Chorus's web page (/ui/): static HTML, CSS and
// JavaScript embedded in the binary, which read the agent's own HTTP API
// from the browser. It imports nothing of Chorus.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// contentSecurityPolicy lets the page load only its own files and talk
// only to the agent that served it; nothing may frame it (the token
// prompt must not be overlaid by another site).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page under /ui/. Every file carries a strong ETag
// (a hash of its content, fixed at build time) and Cache-Control:
// no-cache, so a browser revalidates and gets 304 until the binary
// changes, and the page's security headers. It is safe for concurrent
// use.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	etags := map[string]string{}
	err = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		etags[path] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	server := http.FileServerFS(sub)
	return http.StripPrefix("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path
		if name == "" || strings.HasSuffix(name, "/") {
			name += "index.html"
		}
		h := w.Header()
		if tag, ok := etags[name]; ok {
			// http.FileServer answers If-None-Match from this header.
			h.Set("ETag", tag)
			h.Set("Cache-Control", "no-cache")
		}
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		server.ServeHTTP(w, r)
	}))
}
