package local

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeDefinitionSpellings(t *testing.T) {
	for _, body := range []string{
		`{"Name":"web","Port":80,"Check":{"HTTP":"http://x/","Interval":"2s","DeregisterCriticalServiceAfter":"1m"}}`,
		`{"name":"web","port":80,"check":{"http":"http://x/","interval":"2s","deregister_critical_service_after":"1m"}}`,
		`{"Name":"web","Port":80,"Check":{"HTTP":"http://x/","Interval":2000000000,"DeregisterCriticalServiceAfter":"1m"}}`,
	} {
		d, err := DecodeServiceDefinition([]byte(body), true)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if d.Name != "web" || d.Check == nil || time.Duration(d.Check.Interval) != 2*time.Second ||
			time.Duration(d.Check.DeregisterCriticalServiceAfter) != time.Minute {
			t.Fatalf("%s: %+v", body, d)
		}
		svc, defs, err := d.Build(false)
		if err != nil || svc.ID != "web" || len(defs) != 1 || defs[0].ID != "service:web" {
			t.Fatalf("build: %+v %+v %v", svc, defs, err)
		}
	}
	// Meta keys are user data: never renamed.
	d, err := DecodeServiceDefinition([]byte(`{"Name":"web","Meta":{"check_id":"x","Port":"y"}}`), true)
	if err != nil || d.Meta["check_id"] != "x" || d.Meta["Port"] != "y" {
		t.Fatalf("meta: %+v %v", d.Meta, err)
	}
	if _, err := DecodeServiceDefinition([]byte(`{"Name":"web","Colour":"blue"}`), true); err == nil || !strings.Contains(err.Error(), "Colour") {
		t.Fatalf("strict decode accepted an unknown key: %v", err)
	}
	if _, err := DecodeServiceDefinition([]byte(`{"Name":"web","Colour":"blue"}`), false); err != nil {
		t.Fatalf("lenient decode refused an unknown key: %v", err)
	}
}

// FuzzDecodeServiceDefinition feeds arbitrary bodies to the registration
// decoder and builder used by the HTTP API: errors are fine, panics are
// not, and whatever builds must be a valid service.
func FuzzDecodeServiceDefinition(f *testing.F) {
	f.Add([]byte(`{"Name":"web","Port":80,"Tags":["a"],"Check":{"TTL":"10s"}}`))
	f.Add([]byte(`{"name":"x","checks":[{"tcp":"127.0.0.1:1","interval":"1s"},{"ttl":"1s"}]}`))
	f.Add([]byte(`{"Name":"x","Weights":{"Passing":0,"Warning":-1}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeServiceDefinition(b, false)
		if err != nil {
			return
		}
		svc, _, err := d.Build(true)
		if err != nil {
			return
		}
		if err := svc.Validate(); err != nil {
			t.Fatalf("built an invalid service: %v", err)
		}
	})
}

// FuzzDecodeCheckDefinition does the same for /v1/agent/check/register.
func FuzzDecodeCheckDefinition(f *testing.F) {
	f.Add([]byte(`{"Name":"c","TTL":"5s"}`))
	f.Add([]byte(`{"Name":"c","HTTP":"http://127.0.0.1/","Interval":"1s","Header":{"A":["b"]}}`))
	f.Add([]byte(`{"Name":"c","GRPC":"127.0.0.1:1/svc","Interval":"100ms"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c CheckDefinition
		if err := DecodeDefinition(b, &c, false); err != nil {
			return
		}
		c.build(c.checkID()+"x", true)
	})
}
