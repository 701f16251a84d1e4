package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

// This file drives a real headless Chromium over the DevTools protocol,
// with no dependency: Chromium started with --remote-debugging-pipe reads
// commands on its fd 3 and writes answers and events on its fd 4, each
// message one JSON object ended by a NUL byte.

var (
	chromiumOnce sync.Once
	chromiumBin  string
	chromiumWhy  string
)

// chromiumPath returns Debian's chromium, installing it with apt-get when
// it is missing and the test runs as root; otherwise the test is skipped
// with the reason.
func chromiumPath(t *testing.T) string {
	t.Helper()
	chromiumOnce.Do(func() {
		if p, err := exec.LookPath("chromium"); err == nil {
			chromiumBin = p
			return
		}
		if os.Geteuid() != 0 {
			chromiumWhy = "chromium is not installed and the test is not root: apt-get install chromium to run it"
			return
		}
		if _, err := exec.LookPath("apt-get"); err != nil {
			chromiumWhy = "chromium is not installed and there is no apt-get to install it"
			return
		}
		for _, args := range [][]string{{"update"}, {"install", "-y", "chromium"}} {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				chromiumWhy = fmt.Sprintf("chromium is not installed and apt-get %s failed: %v\n%s", args[0], err, tail(out, 2000))
				return
			}
		}
		p, err := exec.LookPath("chromium")
		if err != nil {
			chromiumWhy = "apt-get installed chromium but it is not on PATH"
			return
		}
		chromiumBin = p
	})
	if chromiumBin == "" {
		t.Skip(chromiumWhy)
	}
	return chromiumBin
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// browser is one headless Chromium process. Its methods may be called
// from one test goroutine at a time; the reader goroutine it starts is
// waited for at cleanup.
type browser struct {
	t   *testing.T
	cmd *exec.Cmd
	out *os.File // our end of Chromium's fd 3

	mu      sync.Mutex
	nextID  int64
	calls   map[int64]chan cdpMessage
	pages   map[string]*page // by session ID
	readErr error
	readEnd chan struct{}
}

// cdpMessage is any message from Chromium: an answer (ID set) or an
// event (Method set).
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *cdpError       `json:"error,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
}

type cdpError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// startBrowser starts headless Chromium with a fresh profile; it is shut
// down at cleanup.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromiumPath(t)
	childIn, ours, err := os.Pipe() // we write, Chromium reads (fd 3)
	if err != nil {
		t.Fatal(err)
	}
	theirs, childOut, err := os.Pipe() // Chromium writes (fd 4), we read
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	cmd := exec.Command(bin,
		"--headless", "--remote-debugging-pipe",
		"--user-data-dir="+t.TempDir(),
		// The sandbox needs user namespaces that containers and root
		// often lack; the page under test is our own.
		"--no-sandbox",
		"--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
		"--force-color-profile=srgb", "--font-render-hinting=none",
		"about:blank")
	cmd.ExtraFiles = []*os.File{childIn, childOut}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	childIn.Close()
	childOut.Close()
	b := &browser{t: t, cmd: cmd, out: ours, calls: map[int64]chan cdpMessage{}, pages: map[string]*page{}, readEnd: make(chan struct{})}
	go b.read(theirs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b.call(ctx, "", "Browser.close", nil) // best effort; the kill below ends it anyway
		cancel()
		ours.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		<-b.readEnd
		theirs.Close()
		if t.Failed() {
			t.Logf("chromium output:\n%s", tail([]byte(logs.String()), 4000))
		}
	})
	return b
}

// read dispatches Chromium's messages until the pipe closes.
func (b *browser) read(r io.Reader) {
	defer close(b.readEnd)
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for id, ch := range b.calls {
				close(ch)
				delete(b.calls, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(raw[:len(raw)-1], &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.calls[m.ID]; ok {
				ch <- m
				delete(b.calls, m.ID)
			}
		} else if p := b.pages[m.SessionID]; p != nil {
			p.event(m)
		}
		b.mu.Unlock()
	}
}

// call sends one command (to the browser, or to a page's session) and
// returns its result.
func (b *browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: chromium is gone: %w", method, b.readErr)
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.calls[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(struct {
		ID        int64  `json:"id"`
		Method    string `json:"method"`
		Params    any    `json:"params,omitempty"`
		SessionID string `json:"sessionId,omitempty"`
	}{id, method, params, session})
	if err != nil {
		return nil, err
	}
	if _, err := b.out.Write(append(msg, 0)); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: chromium closed the pipe", method)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.calls, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// page is one tab. Problems it reports (uncaught exceptions, errors the
// console logs from scripts or from the content security policy) are
// kept for the test to check.
type page struct {
	b       *browser
	session string
	mu      sync.Mutex
	errs    []string
}

// viewport is the emulated screen and colour scheme of a page.
type viewport struct {
	width, height int
	mobile        bool
	dark          bool
}

var (
	desktop = viewport{width: 1280, height: 860}
	phone   = viewport{width: 390, height: 844, mobile: true}
)

// newPage opens a tab with the viewport v.
func (b *browser) newPage(v viewport) *page {
	b.t.Helper()
	var target struct{ TargetID string }
	b.callInto("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct{ SessionID string }
	b.callInto("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	p := &page{b: b, session: att.SessionID}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		p.do(m, nil)
	}
	p.setViewport(v)
	return p
}

// setViewport sets the page's size, touch/mobile mode and colour scheme.
func (p *page) setViewport(v viewport) {
	p.b.t.Helper()
	p.do("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": v.width, "height": v.height, "deviceScaleFactor": 1, "mobile": v.mobile,
	})
	scheme := "light"
	if v.dark {
		scheme = "dark"
	}
	p.do("Emulation.setEmulatedMedia", map[string]any{
		// Reduced motion: no transition is caught half-way in a
		// screenshot.
		"features": []map[string]string{{"name": "prefers-color-scheme", "value": scheme}, {"name": "prefers-reduced-motion", "value": "reduce"}},
	})
}

func (b *browser) callT(session, method string, params any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.call(ctx, session, method, params)
}

// callInto sends a command, failing the test on error, and decodes its
// result into v.
func (b *browser) callInto(session, method string, params, v any) {
	b.t.Helper()
	res, err := b.callT(session, method, params)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := json.Unmarshal(res, v); err != nil {
		b.t.Fatalf("%s: decode %s: %v", method, res, err)
	}
}

// do sends a command to the page and returns its raw result, failing the
// test on error.
func (p *page) do(method string, params any) json.RawMessage {
	p.b.t.Helper()
	res, err := p.b.callT(p.session, method, params)
	if err != nil {
		p.b.t.Fatal(err)
	}
	return res
}

// event records the page's problems. It runs on the reader goroutine with
// the browser's lock held.
func (p *page) event(m cdpMessage) {
	var msg string
	switch m.Method {
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string
				Exception struct{ Description string }
			}
		}
		json.Unmarshal(m.Params, &e)
		msg = "exception: " + e.ExceptionDetails.Text + " " + e.ExceptionDetails.Exception.Description
	case "Log.entryAdded":
		var e struct {
			Entry struct{ Source, Level, Text, URL string }
		}
		json.Unmarshal(m.Params, &e)
		// Network errors are the page's business (a 403 before the token
		// is given is expected); script and security errors are bugs.
		if e.Entry.Level != "error" || e.Entry.Source == "network" {
			return
		}
		msg = fmt.Sprintf("log %s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		json.Unmarshal(m.Params, &e)
		if e.Type != "error" && e.Type != "assert" {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, fmt.Sprint(a.Value, a.Description))
		}
		msg = "console." + e.Type + ": " + strings.Join(parts, " ")
	default:
		return
	}
	p.mu.Lock()
	p.errs = append(p.errs, msg)
	p.mu.Unlock()
}

// problems returns what the page reported so far.
func (p *page) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// navigate loads url and waits until the document has loaded.
func (p *page) navigate(url string) {
	p.b.t.Helper()
	var nav struct{ ErrorText string }
	if err := json.Unmarshal(p.do("Page.navigate", map[string]any{"url": url}), &nav); err != nil || nav.ErrorText != "" {
		p.b.t.Fatalf("navigate %s: %v %s", url, err, nav.ErrorText)
	}
	p.waitFor(10*time.Second, `document.readyState === "complete" ? "" : "document is " + document.readyState`)
}

// eval runs a JavaScript expression in the page (awaiting a promise) and
// decodes its value into v.
func (p *page) eval(expr string, v any) error {
	res, err := p.b.callT(p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true,
	})
	if err != nil {
		return err
	}
	var r struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if v == nil {
		return nil
	}
	if len(r.Result.Value) == 0 {
		return fmt.Errorf("%s: no value", expr)
	}
	return json.Unmarshal(r.Result.Value, v)
}

// run evaluates expr for its effect, failing the test on error.
func (p *page) run(expr string) {
	p.b.t.Helper()
	if err := p.eval(expr, nil); err != nil {
		p.b.t.Fatal(err)
	}
}

// text returns expr's string value, failing the test on error.
func (p *page) text(expr string) string {
	p.b.t.Helper()
	var s string
	if err := p.eval(expr, &s); err != nil {
		p.b.t.Fatal(err)
	}
	return s
}

// waitFor polls expr, a JavaScript expression that is "" once the page
// is as wanted and otherwise says what it is instead.
func (p *page) waitFor(timeout time.Duration, expr string) {
	p.b.t.Helper()
	testutil.Eventually(p.b.t, timeout, func() error {
		var s string
		if err := p.eval(expr, &s); err != nil {
			return err
		}
		if s != "" {
			return errors.New(s)
		}
		return nil
	})
}

// screenshot saves the whole page (not only the viewport) as a PNG.
func (p *page) screenshot(path string) {
	p.b.t.Helper()
	var metrics struct {
		CSSContentSize struct{ Width, Height float64 }
	}
	if err := json.Unmarshal(p.do("Page.getLayoutMetrics", nil), &metrics); err != nil {
		p.b.t.Fatal(err)
	}
	var shot struct{ Data string }
	res := p.do("Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": metrics.CSSContentSize.Width, "height": metrics.CSSContentSize.Height, "scale": 1},
	})
	if err := json.Unmarshal(res, &shot); err != nil {
		p.b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		p.b.t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		p.b.t.Fatalf("screenshot of %d bytes is not a PNG", len(png))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.b.t.Fatal(err)
	}
}
