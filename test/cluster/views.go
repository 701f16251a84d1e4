package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Member statuses as /v1/agent/members reports them (Consul's numbers).
const (
	MemberAbsent  = 0 // not in the list at all
	MemberAlive   = 1
	MemberLeaving = 2
	MemberLeft    = 3
	MemberFailed  = 4
)

// Members returns host i's view of every host's member status, indexed
// by host (MemberAbsent when it does not list the host).
func (c *Cluster) Members(ctx context.Context, i int) ([]uint8, error) {
	var list []struct {
		Name   string
		Status int
	}
	if err := c.Get(ctx, i, "/v1/agent/members", &list, time.Second); err != nil {
		return nil, err
	}
	out := make([]uint8, c.N())
	for _, m := range list {
		if j := c.HostIndex(m.Name); j >= 0 {
			out[j] = uint8(m.Status)
		}
	}
	return out, nil
}

// CatalogView is one agent's catalog as its HTTP API shows it: every
// service instance with the status of each of its checks.
type CatalogView struct {
	Lines  []string            // "service|node|id|check=status,…", sorted
	Digest string              // hash of Lines
	IDs    map[string][]string // service → "node/id" of every instance
}

// Catalog reads host i's catalog: /v1/catalog/services, then
// /v1/health/service/<name> for each name.
func (c *Cluster) Catalog(ctx context.Context, i int) (*CatalogView, error) {
	var services map[string][]string
	if err := c.Get(ctx, i, "/v1/catalog/services", &services, 2*time.Second); err != nil {
		return nil, err
	}
	v := &CatalogView{IDs: map[string][]string{}}
	for name := range services {
		var entries []struct {
			Node    struct{ Node string }
			Service struct{ ID string }
			Checks  []struct{ CheckID, Status string }
		}
		if err := c.Get(ctx, i, "/v1/health/service/"+url.PathEscape(name), &entries, 2*time.Second); err != nil {
			return nil, err
		}
		for _, e := range entries {
			checks := make([]string, 0, len(e.Checks))
			for _, ch := range e.Checks {
				checks = append(checks, ch.CheckID+"="+ch.Status)
			}
			sort.Strings(checks)
			v.Lines = append(v.Lines, fmt.Sprintf("%s|%s|%s|%s", name, e.Node.Node, e.Service.ID, strings.Join(checks, ",")))
			v.IDs[name] = append(v.IDs[name], e.Node.Node+"/"+e.Service.ID)
		}
	}
	sort.Strings(v.Lines)
	h := sha256.New()
	for _, l := range v.Lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	v.Digest = hex.EncodeToString(h.Sum(nil)[:8])
	return v, nil
}

// Has reports whether the view lists instance id of service on node.
func (v *CatalogView) Has(service, node, id string) bool {
	for _, s := range v.IDs[service] {
		if s == node+"/"+id {
			return true
		}
	}
	return false
}

// Converged reads every agent's catalog and members and reports nil when
// all digests are equal, every host is alive in every member list and
// every demo instance is passing everywhere; else what differs.
func (c *Cluster) Converged(ctx context.Context) ([]*CatalogView, error) {
	views := make([]*CatalogView, c.N())
	for i := range c.hosts {
		m, err := c.Members(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("%s members: %w", c.hosts[i].Name, err)
		}
		for j, st := range m {
			if st != MemberAlive {
				return nil, fmt.Errorf("%s sees %s as %s", c.hosts[i].Name, c.hosts[j].Name, MemberName(st))
			}
		}
		v, err := c.Catalog(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("%s catalog: %w", c.hosts[i].Name, err)
		}
		views[i] = v
	}
	for i, v := range views {
		if v.Digest != views[0].Digest {
			return views, fmt.Errorf("%w: digest %s on %s differs from %s on %s (%s)", errNotReady,
				v.Digest, c.hosts[i].Name, views[0].Digest, c.hosts[0].Name, firstDiff(views[0].Lines, v.Lines))
		}
	}
	for _, h := range c.hosts {
		want := fmt.Sprintf("demo|%s|demo|", h.Name)
		ok := false
		for _, l := range views[0].Lines {
			if strings.HasPrefix(l, want) {
				ok = !strings.Contains(l, "=critical") && !strings.Contains(l, "=warning")
				break
			}
		}
		if !ok {
			return views, fmt.Errorf("%w: demo on %s is not passing in the catalog", errNotReady, h.Name)
		}
	}
	return views, nil
}

// firstDiff describes the first line that differs between a and b.
func firstDiff(a, b []string) string {
	set := func(l []string) map[string]bool {
		m := make(map[string]bool, len(l))
		for _, s := range l {
			m[s] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	for _, l := range a {
		if !sb[l] {
			return "only in first: " + l
		}
	}
	for _, l := range b {
		if !sa[l] {
			return "only in second: " + l
		}
	}
	return "same lines"
}

// MemberName names a member status.
func MemberName(st uint8) string {
	switch st {
	case MemberAbsent:
		return "absent"
	case MemberAlive:
		return "alive"
	case MemberLeaving:
		return "leaving"
	case MemberLeft:
		return "left"
	case MemberFailed:
		return "failed"
	}
	return fmt.Sprintf("status %d", st)
}
