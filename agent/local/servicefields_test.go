package local

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/chorusdns/chorus/catalog"
)

// FuzzServiceConsulFields feeds registrations with Consul's other fields
// (Ports, SocketPath, TaggedAddresses, EnableTagOverride, Locality, and
// the refused Kind, Proxy, Connect…) to the decoder and builder: errors
// are fine, panics are not; whatever builds is valid, survives the record
// encoding and a Clone unchanged, and has Port set to its default port.
func FuzzServiceConsulFields(f *testing.F) {
	f.Add([]byte(`{"Name":"web","Ports":[{"Name":"http","Port":80,"Default":true},{"Name":"admin","Port":81}],"SocketPath":"/s","TaggedAddresses":{"lan_ipv4":{"Address":"10.0.0.1","Port":80},"x":{"Address":"h","Port":1}},"EnableTagOverride":true,"Locality":{"Region":"r","Zone":"z"}}`))
	f.Add([]byte(`{"name":"web","ports":[{"name":"a","port":1,"default":true}],"socket_path":"/s","tagged_addresses":{"wan_ipv6":{"address":"::1","port":2}},"enable_tag_override":true,"locality":{"region":"r"}}`))
	f.Add([]byte(`{"Name":"p","Kind":"connect-proxy","Proxy":{"DestinationServiceName":"web"}}`))
	f.Add([]byte(`{"Name":"p","Connect":{"Native":true},"Namespace":"x","Partition":"y","AI":{"Role":"r"}}`))
	f.Add([]byte(`{"Name":"p","Port":80,"Ports":[{"Name":"a","Port":1,"Default":true}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeServiceDefinition(b, false)
		if err != nil {
			return
		}
		svc, _, err := d.Build(false)
		if err != nil {
			return
		}
		if err := svc.Validate(); err != nil {
			t.Fatalf("built an invalid service: %v", err)
		}
		if len(svc.Ports) > 0 && svc.Port != svc.DefaultPort() {
			t.Fatalf("Port %d, default port %d", svc.Port, svc.DefaultPort())
		}
		raw, err := json.Marshal(svc)
		if err != nil {
			t.Fatal(err)
		}
		var back catalog.Service
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Ports, svc.Ports) || back.SocketPath != svc.SocketPath || !reflect.DeepEqual(back.TaggedAddresses, svc.TaggedAddresses) ||
			back.EnableTagOverride != svc.EnableTagOverride || !reflect.DeepEqual(back.Locality, svc.Locality) {
			t.Fatalf("record encoding lost fields:\n%+v\n%+v", svc, back)
		}
		if c := svc.Clone(); !reflect.DeepEqual(c, svc) {
			t.Fatalf("Clone differs:\n%+v\n%+v", svc, c)
		}
	})
}

// The fields Chorus cannot honour are refused with an error naming them.
func TestServiceConsulFieldsRefused(t *testing.T) {
	for field, body := range map[string]string{
		"Kind":      `{"Name":"p","Kind":"connect-proxy","Port":1}`,
		"Proxy":     `{"Name":"p","Proxy":{"DestinationServiceName":"web"}}`,
		"Connect":   `{"Name":"p","Connect":{"SidecarService":{}}}`,
		"AI":        `{"Name":"p","AI":{"Role":"mcp-server"}}`,
		"Namespace": `{"Name":"p","Namespace":"team"}`,
		"Partition": `{"Name":"p","Partition":"eu"}`,
		"Ports":     `{"Name":"p","Ports":[{"Name":"a","Port":1},{"Name":"a","Port":2,"Default":true}]}`,
	} {
		d, err := DecodeServiceDefinition([]byte(body), false)
		if err != nil {
			t.Fatalf("%s: decode: %v", field, err)
		}
		if _, _, err := d.Build(false); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming it", field, err)
		}
	}
	// Empty Proxy/Connect objects and the default namespace are no request
	// for anything: accepted, as Consul accepts them.
	d, err := DecodeServiceDefinition([]byte(`{"Name":"p","Proxy":null,"Connect":{},"Namespace":"default","Kind":""}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Build(false); err != nil {
		t.Fatalf("empty Connect fields: %v", err)
	}
}
