package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// client talks to the agents' HTTP APIs and DNS servers.
type client struct {
	http *http.Client
	dns  *dns.Client
}

func newClient() *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}
	return &client{
		http: &http.Client{Transport: tr},
		dns:  &dns.Client{Net: "udp", Timeout: time.Second},
	}
}

func httpURL(p *proc, path string) string {
	return "http://" + net.JoinHostPort(p.addr, strconv.Itoa(httpPort)) + path
}

// get fetches path from p's HTTP API within timeout.
func (c *client) get(ctx context.Context, p *proc, path string, timeout time.Duration) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL(p, path), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, resp.Header, nil
}

// put sends body to path on p's HTTP API.
func (c *client) put(ctx context.Context, p *proc, path, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, httpURL(p, path), strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// metrics are the samples the harness reads from an agent's /metrics.
type metrics map[string]float64

// parseMetrics reads Prometheus text exposition: "name{labels} value"
// lines, comments skipped. Keys are the series as written (name with its
// label set); lines that do not parse are skipped.
func parseMetrics(b []byte) metrics {
	m := metrics{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the series; a label value may hold spaces,
		// so split after the closing brace when there is one.
		split := strings.LastIndexByte(line, '}')
		if split < 0 {
			split = strings.IndexByte(line, ' ')
			if split < 0 {
				continue
			}
		} else {
			split++
		}
		series := line[:split]
		rest := strings.Fields(line[split:])
		if len(rest) == 0 || series == "" {
			continue
		}
		v, err := strconv.ParseFloat(rest[0], 64)
		if err != nil {
			continue
		}
		m[series] = v
	}
	return m
}

func (c *client) metrics(ctx context.Context, p *proc) (metrics, error) {
	b, _, err := c.get(ctx, p, "/metrics", 5*time.Second)
	if err != nil {
		return nil, err
	}
	return parseMetrics(b), nil
}

// member is one entry of /v1/agent/members.
type member struct {
	Name   string
	Addr   string
	Status int // 1 alive, 2 leaving, 3 left, 4 failed
}

func (c *client) members(ctx context.Context, p *proc) ([]member, error) {
	b, _, err := c.get(ctx, p, "/v1/agent/members", 10*time.Second)
	if err != nil {
		return nil, err
	}
	var ms []member
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("members of %s: %w", p.name, err)
	}
	return ms, nil
}

// answer is one DNS query's outcome.
type answer int

const (
	answerOK    answer = iota // at least one record
	answerEmpty               // NXDOMAIN or no record
	answerError               // no reply (timeout, refused) or another rcode
)

// query asks p's DNS for name (type A, UDP) and classifies the reply.
func (c *client) query(p *proc, name string) answer {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.RecursionDesired = false
	r, _, err := c.dns.Exchange(m, net.JoinHostPort(p.addr, strconv.Itoa(dnsPort)))
	if err != nil {
		return answerError
	}
	switch {
	case r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0:
		return answerOK
	case r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError:
		return answerEmpty
	}
	return answerError
}

// eachParallel runs fn for every proc with at most width at once.
func eachParallel(ps []*proc, width int, fn func(p *proc)) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for _, p := range ps {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(p)
		}()
	}
	wg.Wait()
}

// waitDNS waits until every agent in ps answers name as want (answerOK:
// present; answerEmpty: gone) and returns, per agent, the time from
// start until its DNS first did; agents that never did within timeout
// are left out and counted in missed. Each agent is woken by a blocking
// query on its health endpoint for the service (the index moves when the
// answer changes, i.e. on the same catalog snapshot that changes the DNS
// answer) and asked again over DNS at least every poll.
func (c *client) waitDNS(ctx context.Context, ps []*proc, svc string, want answer, start time.Time,
	indexes map[*proc]string, timeout, poll time.Duration) (times []time.Duration, missed []*proc) {
	var mu sync.Mutex
	ctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := indexes[p]
			for ctx.Err() == nil {
				if c.query(p, svc+".service.chorus") == want {
					d := time.Since(start)
					mu.Lock()
					times = append(times, d)
					mu.Unlock()
					return
				}
				path := "/v1/health/service/" + svc + "?wait=" + poll.String()
				if idx != "" {
					path += "&index=" + idx
				}
				_, h, err := c.get(ctx, p, path, poll+5*time.Second)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				idx = h.Get("X-Consul-Index")
			}
			mu.Lock()
			missed = append(missed, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return times, missed
}

// indexes returns each agent's current X-Consul-Index of the service's
// health endpoint, where blocking queries for its next change start.
func (c *client) indexes(ctx context.Context, ps []*proc, svc string) map[*proc]string {
	var mu sync.Mutex
	out := map[*proc]string{}
	eachParallel(ps, 32, func(p *proc) {
		_, h, err := c.get(ctx, p, "/v1/health/service/"+svc, 5*time.Second)
		if err != nil {
			return
		}
		mu.Lock()
		out[p] = h.Get("X-Consul-Index")
		mu.Unlock()
	})
	return out
}
