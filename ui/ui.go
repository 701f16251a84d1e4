// Package ui serves Chorus's web page (/ui/): static HTML, CSS and
// JavaScript embedded in the binary, which read the agent's own HTTP API
// from the browser. It imports nothing of Chorus.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the page under /ui/. It is safe for concurrent use.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix("/ui/", http.FileServerFS(sub))
}
