package httpapi

import (
	"crypto/ed25519"
	"log/slog"
	"strings"
	"testing"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
)

func TestDecodeCatalogRegistration(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"no node", `{"Address":"10.0.0.1"}`, 400, "Node is required"},
		{"other dc", `{"Node":"a","Address":"10.0.0.1","Datacenter":"dc9"}`, 500, "No path to datacenter"},
		{"service of other dc", `{"Node":"a","Address":"10.0.0.1","Service":{"Service":"s","Datacenter":"dc9"}}`, 500, "No path to datacenter"},
		{"node ID", `{"Node":"a","Address":"10.0.0.1","ID":"40e4a748-2192-161a-0510-9bf59fe950b5"}`, 400, "derives a node's ID"},
		{"partition", `{"Node":"a","Address":"10.0.0.1","Partition":"p1"}`, 400, "Partition"},
		{"node locality", `{"Node":"a","Address":"10.0.0.1","Locality":{"Region":"eu"}}`, 400, "Locality"},
		{"connect", `{"Node":"a","Address":"10.0.0.1","Service":{"Service":"s","Connect":{"Native":true}}}`, 400, "Service.Connect"},
		{"kind", `{"Node":"a","Address":"10.0.0.1","Service":{"Service":"s","Kind":"connect-proxy"}}`, 400, "Service.Kind"},
		{"port and ports", `{"Node":"a","Address":"10.0.0.1","Service":{"Service":"s","Port":1,"Ports":[{"Name":"x","Port":2,"Default":true}]}}`, 400, "cannot set both"},
		{"check of other node", `{"Node":"a","Address":"10.0.0.1","Check":{"Node":"b","CheckID":"c"}}`, 400, `names node`},
		{"check exposed port", `{"Node":"a","Address":"10.0.0.1","Check":{"CheckID":"c","ExposedPort":8080}}`, 400, "ExposedPort"},
		{"bad interval", `{"Node":"a","Address":"10.0.0.1","Check":{"CheckID":"c","Definition":{"Interval":"soon"}}}`, 400, "Interval"},
		{"not json", `{"Node":`, 400, ""},
		{"trailing", `{"Node":"a"} {}`, 400, "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeCatalogRegistration([]byte(tc.body), "dc1")
			if err == nil || statusOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want a %d naming %q", err, tc.code, tc.want)
			}
		})
	}
	reg, err := decodeCatalogRegistration([]byte(`{"Node":"a","Address":"10.0.0.1","Datacenter":"DC1",
		"Service":{"Service":"s","Ports":[{"Name":"x","Port":2,"Default":true}],"Weights":{"Passing":0,"Warning":0}},
		"Checks":[{"CheckID":"c","Type":"http","Definition":{"Interval":"10s","TimeoutDuration":2000000000}}]}`), "dc1")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Service == nil || reg.Service.Port != 2 || len(reg.Checks) != 1 || reg.Checks[0].Interval != "10s" || reg.Checks[0].Timeout != "2s" || reg.Checks[0].Type != "http" {
		t.Fatalf("decoded %+v %+v", reg.Service, reg.Checks)
	}
}

// FuzzCatalogRegister feeds arbitrary bodies to the decoder of PUT
// /v1/catalog/register and applies what it accepts to an external node:
// errors are fine, panics are not, and whatever is applied is a record
// every peer accepts (it validates, encodes, decodes and verifies).
func FuzzCatalogRegister(f *testing.F) {
	for _, s := range []string{
		`{"Node":"db1","Address":"10.0.0.1"}`,
		`{"Node":"db1","Address":"10.0.0.1","NodeMeta":{"a":"b"},"TaggedAddresses":{"wan":"1.2.3.4"},"Check":{"CheckID":"up","Status":"passing"}}`,
		`{"Node":"db1","Address":"db.example.com","Service":{"ID":"pg","Service":"postgres","Port":5432,"Tags":["a"],"Meta":{"k":"v"}},"Checks":[{"CheckID":"pg","ServiceID":"pg","Status":"warning","Output":"slow"}]}`,
		`{"Node":"db1","SkipNodeUpdate":true,"Service":{"Service":"x","Ports":[{"Name":"a","Port":1,"Default":true}],"TaggedAddresses":{"wan":{"Address":"1.2.3.4","Port":5}},"Locality":{"Region":"r"}}}`,
		`{"Node":"db1","Address":"10.0.0.1","Check":{"Name":"n","ServiceID":"missing"}}`,
	} {
		f.Add([]byte(s))
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		reg, err := decodeCatalogRegistration(b, "dc1")
		if err != nil {
			return
		}
		store := catalog.NewStore()
		x := local.NewExternals(local.ExternalsConfig{Self: "agent1", Datacenter: "dc1", Store: store,
			Publish: func(rec *catalog.NodeRecord) bool {
				if err := rec.Sign(key); err != nil {
					t.Fatal(err)
				}
				return store.ApplyRecord(rec)
			}}, slog.New(slog.DiscardHandler))
		if err := x.Register(reg); err != nil {
			return
		}
		name := reg.Node
		if n, ok := store.Snapshot().Node(name); ok {
			name = n.Node.Name
		}
		rec := store.Record(name)
		if rec == nil || rec.Owner != "agent1" {
			t.Fatalf("registered, but the store holds %+v", rec)
		}
		enc, err := catalog.EncodeRecord(rec)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		d, err := catalog.DecodeRecord(enc)
		if err != nil {
			t.Fatalf("a peer would refuse it: %v", err)
		}
		if err := d.Verify(pub); err != nil {
			t.Fatalf("a peer would refuse its signature: %v", err)
		}
	})
}
