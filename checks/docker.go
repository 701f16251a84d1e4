package checks

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// dockerProber runs Args inside a container through the Docker Engine API
// on a unix socket, as Consul's Docker check does: create an exec, start it
// attached (stdout and stderr arrive multiplexed on the response), then read
// its exit code. Exit 0 is passing, 1 warning, anything else critical. A
// timeout ends the probe as critical but cannot kill the process in the
// container (the API has no call for that): like Consul, a hung command
// stays there. Paths carry no API version, so the engine answers in its
// own (the calls used have kept their shape since API 1.24, and recent
// engines refuse old version prefixes).
type dockerProber struct {
	container string
	args      []string
	timeout   time.Duration
	maxOutput int
	client    *http.Client
}

func newDockerProber(d Definition, cfg Config) *dockerProber {
	socket := cfg.DockerSocket
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		},
		// One connection per call: the start call's connection is taken
		// over by the stream and closed when it ends.
		DisableKeepAlives: true,
	}
	return &dockerProber{
		container: d.DockerContainerID,
		args:      d.Args,
		timeout:   d.Timeout,
		maxOutput: cfg.outputMaxSize(),
		client:    &http.Client{Transport: transport},
	}
}

// dockerError is an error answer of the Docker Engine API.
type dockerError struct {
	status  int
	message string
}

func (e *dockerError) Error() string {
	return fmt.Sprintf("docker API answered %d: %s", e.status, e.message)
}

// call sends one request to the engine and decodes a JSON answer into out
// (nil: the body is discarded) unless the status is an error.
func (p *dockerProber) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := p.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("docker API %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// send sends one request and returns a response whose status is a
// success; an error status is turned into a *dockerError.
func (p *dockerProber) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", UserAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer func() { _ = resp.Body.Close() }()
		var msg struct{ Message string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &msg) != nil || msg.Message == "" {
			msg.Message = string(bytes.TrimSpace(b))
		}
		return nil, &dockerError{status: resp.StatusCode, message: msg.Message}
	}
	return resp, nil
}

func (p *dockerProber) probe(ctx context.Context) (string, string) {
	var created struct{ Id string }
	err := p.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(p.container)+"/exec", map[string]any{
		"AttachStdin":  false,
		"AttachStdout": true,
		"AttachStderr": true,
		"Tty":          false,
		"Cmd":          p.args,
	}, &created)
	if err != nil {
		return StatusCritical, p.failure(ctx, "creating the exec", err)
	}
	if created.Id == "" {
		return StatusCritical, fmt.Sprintf("docker exec in %s: the engine returned no exec ID", p.container)
	}
	execPath := "/exec/" + url.PathEscape(created.Id)

	out := newHeadBuffer(p.maxOutput)
	resp, err := p.send(ctx, http.MethodPost, execPath+"/start", map[string]any{"Detach": false, "Tty": false})
	if err != nil {
		return StatusCritical, p.failure(ctx, "starting the exec", err)
	}
	err = demuxDockerStream(out, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return StatusCritical, p.failure(ctx, "reading the output", err)
	}

	var inspect struct {
		Running  bool
		ExitCode int
	}
	if err := p.call(ctx, http.MethodGet, execPath+"/json", nil, &inspect); err != nil {
		return StatusCritical, p.failure(ctx, "reading the exit code", err)
	}
	if inspect.Running {
		// The stream ended but the process has not: the engine closed it.
		return StatusCritical, fmt.Sprintf("docker exec in %s: the output stream ended while the command still runs\n\n%s", p.container, out.String())
	}
	output := out.String()
	switch inspect.ExitCode {
	case 0:
		return StatusPassing, output
	case 1:
		return StatusWarning, output
	default:
		return StatusCritical, output
	}
}

// failure words a failed step of a probe: a timeout names the Timeout.
func (p *dockerProber) failure(ctx context.Context, step string, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("Timed out (%s) running check in container %s (%s)", p.timeout, p.container, step)
	}
	return fmt.Sprintf("docker exec in %s: %s: %v", p.container, step, err)
}

// demuxDockerStream copies the payloads of a Docker multiplexed stream
// (frames of an 8-byte header — stream type, three zero bytes, a
// big-endian uint32 length — then that many bytes) into w until EOF.
// Stdout and stderr both go to w, as a script check's do.
func demuxDockerStream(w io.Writer, r io.Reader) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("frame header: %w", err)
		}
		switch hdr[0] {
		case 0, 1, 2: // stdin, stdout, stderr
		case 3: // systemerr: the engine's own error about the exec
		default:
			return fmt.Errorf("frame header: unknown stream %d", hdr[0])
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.CopyN(w, r, n); err != nil {
			return fmt.Errorf("frame of %d bytes: %w", n, err)
		}
	}
}
