package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// httpProber sends one request per probe: 2xx is passing, 429 warning, anything
// else or no answer critical. Keep-alives are off (as in Consul), so an idle
// check holds no connection and a server closing idle connections cannot fail a
// probe; each check has its own Transport, which then holds nothing between probes.
type httpProber struct {
	url       string
	method    string
	header    http.Header
	body      string
	client    *http.Client
	maxOutput int
}

func newHTTPProber(d Definition, maxOutput int) *httpProber {
	transport := &http.Transport{
		Proxy: nil, // a health check talks to the service itself, never through HTTP_PROXY
		DialContext: (&net.Dialer{
			KeepAlive: -1, // one request per connection: no TCP keep-alive probes
		}).DialContext,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: d.TLSSkipVerify, // the check's explicit choice
			ServerName:         d.TLSServerName,
		},
		DisableKeepAlives: true,
	}
	client := &http.Client{Transport: transport}
	if d.DisableRedirects {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return &httpProber{
		url:       d.HTTP,
		method:    d.Method,
		header:    http.Header(d.Header),
		body:      d.Body,
		client:    client,
		maxOutput: maxOutput,
	}
}

func (p *httpProber) probe(ctx context.Context) (string, string) {
	var body io.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, p.url, body)
	if err != nil {
		return StatusCritical, err.Error()
	}
	req.Header = p.header.Clone()
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/plain, text/*, */*")
	}

	resp, err := p.client.Do(req)
	if err != nil {
		return StatusCritical, err.Error()
	}
	// Read no more than we keep; with keep-alives off the rest is never drained.
	out := newHeadBuffer(p.maxOutput)
	_, readErr := io.Copy(out, io.LimitReader(resp.Body, int64(p.maxOutput)+1))
	_ = resp.Body.Close()

	output := fmt.Sprintf("HTTP %s %s: %s Output: %s", p.method, p.url, resp.Status, out.String())
	if readErr != nil {
		output += fmt.Sprintf(" (reading the body: %v)", readErr)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return StatusPassing, output
	case resp.StatusCode == http.StatusTooManyRequests:
		return StatusWarning, output
	default:
		return StatusCritical, output
	}
}
