package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chorusdns/chorus/catalog"
)

// remoteDC answers which requests a remote datacenter's summary serves:
// catalog and health reads of a datacenter this agent holds; everything
// else naming another datacenter is 500 No path to datacenter.
func TestRemoteDC(t *testing.T) {
	st := catalog.NewStore()
	st.SetRemotes([]*catalog.RemoteDatacenter{{Name: "dc2", Version: 1, Snapshot: catalog.NewStore().Snapshot()}})
	a := &Server{store: st}
	a.settings.Store(&Settings{Datacenter: "dc1"})
	for _, tc := range []struct {
		method, target string
		remote         string // "" for this datacenter
		err            bool
	}{
		{"GET", "/v1/health/service/web", "", false},
		{"GET", "/v1/health/service/web?dc=DC1", "", false},
		{"GET", "/v1/health/service/web?dc=dc2", "dc2", false},
		{"GET", "/v1/catalog/nodes?dc=DC2", "dc2", false},
		{"HEAD", "/v1/catalog/services?dc=dc2", "dc2", false},
		{"GET", "/v1/catalog/service/web?dc=dc3", "", true},
		{"GET", "/v1/catalog/datacenters?dc=dc2", "", true},
		{"GET", "/v1/agent/services?dc=dc2", "", true},
		{"PUT", "/v1/catalog/register?dc=dc2", "", true},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			rdc, err := a.remoteDC(r)
			if tc.err {
				var he *httpError
				if err == nil || !errors.As(err, &he) || statusOf(err) != http.StatusInternalServerError || err.Error() != "No path to datacenter" {
					t.Fatalf("err %v, want 500 No path to datacenter", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (rdc == nil) != (tc.remote == "") || rdc != nil && rdc.Name != tc.remote {
				t.Fatalf("remote %+v, want %q", rdc, tc.remote)
			}
		})
	}
}

func TestHasHealthy(t *testing.T) {
	entry := func(statuses ...string) serviceEntry {
		var e serviceEntry
		for _, s := range statuses {
			e.Checks = append(e.Checks, healthCheck{checkFields: checkFields{Status: s}})
		}
		return e
	}
	for _, tc := range []struct {
		name string
		v    any
		want bool
	}{
		{"none", []serviceEntry{}, false},
		{"no checks", []serviceEntry{entry()}, true},
		{"passing", []serviceEntry{entry(catalog.HealthPassing)}, true},
		{"warning", []serviceEntry{entry(catalog.HealthPassing, catalog.HealthWarning)}, true},
		{"critical", []serviceEntry{entry(catalog.HealthPassing, catalog.HealthCritical)}, false},
		{"maintenance", []serviceEntry{entry(catalog.HealthMaintenance)}, false},
		{"one of two", []serviceEntry{entry(catalog.HealthCritical), entry(catalog.HealthPassing)}, true},
		{"other type", map[string]int{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hasHealthy(tc.v); got != tc.want {
				t.Fatalf("hasHealthy = %v, want %v", got, tc.want)
			}
		})
	}
}
