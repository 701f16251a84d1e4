package local

import (
	"strings"
	"testing"

	"github.com/chorusdns/chorus/checks"
)

// TestCheckTypeFields: Consul's keys for every check type, CamelCase or
// snake_case, reach the check definition; H2PingUseTLS defaults to true.
func TestCheckTypeFields(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		typ        string
		want       func(d checks.Definition) bool
		err        string
	}{
		{"docker", `{"DockerContainerID":"f00","Shell":"/bin/sh","Args":["/probe","0"],"Interval":"1s"}`, checks.TypeDocker,
			func(d checks.Definition) bool {
				return d.DockerContainerID == "f00" && d.Shell == "/bin/sh" && len(d.Args) == 2
			}, ""},
		{"docker snake", `{"docker_container_id":"f00","script_args":["/probe"],"interval":"1s"}`, checks.TypeDocker,
			func(d checks.Definition) bool { return d.DockerContainerID == "f00" && d.Args[0] == "/probe" }, ""},
		{"udp", `{"udp":"127.0.0.1:53","interval":"1s"}`, checks.TypeUDP, func(d checks.Definition) bool { return d.UDP == "127.0.0.1:53" }, ""},
		{"h2ping default tls", `{"H2PING":"h:443","Interval":"1s"}`, checks.TypeH2Ping, func(d checks.Definition) bool { return d.H2PingUseTLS }, ""},
		{"h2ping cleartext", `{"h2ping":"h:80","h2ping_use_tls":false,"interval":"1s"}`, checks.TypeH2Ping, func(d checks.Definition) bool { return !d.H2PingUseTLS }, ""},
		{"alias", `{"alias_node":"n1","alias_service":"web"}`, checks.TypeAlias, func(d checks.Definition) bool { return d.AliasNode == "n1" && d.AliasService == "web" }, ""},
		{"os_service", `{"os_service":"sshd","interval":"1s"}`, checks.TypeOSService, func(d checks.Definition) bool { return d.OSService == "sshd" }, ""},
		{"tcp tls and output size", `{"tcp":"h:1","tcp_use_tls":true,"output_max_size":100,"interval":"1s"}`, checks.TypeTCP,
			func(d checks.Definition) bool { return d.TCPUseTLS && d.OutputMaxSize == 100 }, ""},
		{"http no redirects", `{"http":"http://h/","disable_redirects":true,"interval":"1s"}`, checks.TypeHTTP, func(d checks.Definition) bool { return d.DisableRedirects }, ""},
		{"script refused by name", `{"Script":"/bin/true","Interval":"1s"}`, "", nil, "Script"},
		{"default namespace taken", `{"TTL":"10s","Namespace":"default","Partition":"default"}`, checks.TypeTTL, func(d checks.Definition) bool { return d.TTL > 0 }, ""},
		{"namespace refused by name", `{"TTL":"10s","Namespace":"team-a"}`, "", nil, "Namespace"},
		{"partition refused by name", `{"TTL":"10s","partition":"p1"}`, "", nil, "Partition"},
		{"docker and http", `{"DockerContainerID":"f00","Args":["x"],"HTTP":"http://h/","Interval":"1s"}`, "", nil, "HTTP and DockerContainerID are set at once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c CheckDefinition
			if err := DecodeDefinition([]byte(tc.body), &c, true); err != nil {
				t.Fatalf("decode: %v", err)
			}
			d, err := c.build("c", true)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Type() != tc.typ || !tc.want(d) {
				t.Fatalf("type %q, definition %+v", d.Type(), d)
			}
		})
	}
}

// FuzzDecodeCheckTypes feeds check bodies of the newer types to the
// decoder and builder: errors are fine, panics are not, and what builds
// has exactly one type.
func FuzzDecodeCheckTypes(f *testing.F) {
	f.Add([]byte(`{"docker_container_id":"f00","args":["/probe"],"interval":"1s"}`))
	f.Add([]byte(`{"H2PING":"h:443","H2PingUseTLS":false,"Interval":"1s"}`))
	f.Add([]byte(`{"AliasService":"web","AliasNode":""}`))
	f.Add([]byte(`{"os_service":"-x","UDP":"h:1","interval":"1s"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c CheckDefinition
		if err := DecodeDefinition(b, &c, false); err != nil {
			return
		}
		d, err := c.build("c", true)
		if err != nil {
			return
		}
		if d.Type() == "" {
			t.Fatalf("built a check of no type: %+v", d)
		}
	})
}
