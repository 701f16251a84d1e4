package checks

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	sec := time.Second
	scriptsOn := Config{EnableScriptChecks: true}
	tests := []struct {
		name    string
		def     Definition
		cfg     Config
		wantErr string // substring; "" means valid
		script  bool   // the error must also be ErrScriptDisabled
	}{
		{name: "http", def: Definition{HTTP: "http://127.0.0.1:8080/health", Interval: sec}},
		{name: "https with method header body", def: Definition{HTTP: "https://example.com/h", Method: "POST", Header: map[string][]string{"X-Token": {"a"}}, Body: "{}", Interval: sec}},
		{name: "tcp", def: Definition{TCP: "127.0.0.1:22", Interval: sec}},
		{name: "tcp ipv6", def: Definition{TCP: "[::1]:22", Interval: sec}},
		{name: "grpc", def: Definition{GRPC: "localhost:9000", Interval: sec}},
		{name: "grpc with service", def: Definition{GRPC: "localhost:9000/my.Service", Interval: sec}},
		{name: "ttl without interval", def: Definition{TTL: 30 * sec}},
		{name: "script enabled", def: Definition{Args: []string{"/bin/true"}, Interval: sec}, cfg: scriptsOn},
		{name: "minimum interval", def: Definition{TCP: "h:1", Interval: MinInterval}},
		{name: "initial status and counts", def: Definition{TCP: "h:1", Interval: sec, Status: StatusPassing, SuccessBeforePassing: 2, FailuresBeforeCritical: 3}},

		{name: "udp", def: Definition{UDP: "127.0.0.1:53", Interval: sec}},
		{name: "h2ping", def: Definition{H2PING: "localhost:443", H2PingUseTLS: true, Interval: sec}},
		{name: "docker", def: Definition{DockerContainerID: "f972c95ebf0e", Args: []string{"/bin/check"}, Interval: sec}, cfg: scriptsOn},
		{name: "alias without interval", def: Definition{AliasService: "web"}},
		{name: "alias node", def: Definition{AliasNode: "n1"}},
		{name: "os_service", def: Definition{OSService: "sshd.service", Interval: sec}},
		{name: "tcp with tls", def: Definition{TCP: "h:443", TCPUseTLS: true, Interval: sec}},
		{name: "udp no port", def: Definition{UDP: "h", Interval: sec}, wantErr: "UDP: \"h\" is not host:port"},
		{name: "udp interval", def: Definition{UDP: "h:1"}, wantErr: "Interval: required for udp checks"},
		{name: "h2ping bad", def: Definition{H2PING: "https://h/", Interval: sec}, wantErr: "H2PING: \"https://h/\" is not host:port"},
		{name: "docker disabled", def: Definition{DockerContainerID: "abc", Args: []string{"/bin/true"}, Interval: sec}, wantErr: "DockerContainerID: docker checks run commands and are disabled"},
		{name: "docker without args", def: Definition{DockerContainerID: "abc", Interval: sec}, cfg: scriptsOn, wantErr: "Args: required for a Docker check"},
		{name: "docker bad id", def: Definition{DockerContainerID: "../x", Args: []string{"/bin/true"}, Interval: sec}, cfg: scriptsOn, wantErr: "DockerContainerID: \"../x\" is not a container ID or name"},
		{name: "docker and tcp", def: Definition{DockerContainerID: "abc", Args: []string{"x"}, TCP: "h:1", Interval: sec}, cfg: scriptsOn, wantErr: "TCP and DockerContainerID are set at once"},
		{name: "os_service option", def: Definition{OSService: "--now", Interval: sec}, wantErr: "OSService: \"--now\" is not a service name"},
		{name: "os_service slash", def: Definition{OSService: "a/b", Interval: sec}, wantErr: "OSService"},
		{name: "alias and ttl", def: Definition{AliasService: "web", TTL: sec}, wantErr: "TTL and AliasNode/AliasService are set at once"},
		{name: "alias service slash", def: Definition{AliasService: "a/b"}, wantErr: "AliasService: \"a/b\" is not a node name or service ID"},
		{name: "alias node too long", def: Definition{AliasNode: strings.Repeat("n", 257)}, wantErr: "AliasNode"},
		{name: "negative output size", def: Definition{TTL: sec, OutputMaxSize: -1}, wantErr: "OutputMaxSize: -1 is negative"},
		{name: "no kind", def: Definition{Interval: sec}, wantErr: "no check type: set one of HTTP, TCP, UDP, GRPC, H2PING, TTL, Args, DockerContainerID, AliasNode/AliasService or OSService"},
		{name: "two kinds", def: Definition{HTTP: "http://h/", TCP: "h:1", Interval: sec}, wantErr: "HTTP and TCP are set at once"},
		{name: "three kinds", def: Definition{GRPC: "h:1", TTL: sec, Args: []string{"x"}}, cfg: scriptsOn, wantErr: "GRPC and TTL and Args are set at once"},
		{name: "interval missing", def: Definition{HTTP: "http://h/"}, wantErr: "Interval: required for http checks"},
		{name: "interval missing script", def: Definition{Args: []string{"x"}}, cfg: scriptsOn, wantErr: "Interval: required for script checks"},
		{name: "interval too short", def: Definition{TCP: "h:1", Interval: 50 * time.Millisecond}, wantErr: "Interval: 50ms is under the minimum of 100ms"},
		{name: "negative interval", def: Definition{TCP: "h:1", Interval: -sec}, wantErr: "Interval: -1s is under the minimum"},
		{name: "negative ttl", def: Definition{TTL: -sec}, wantErr: "TTL: -1s is negative"},
		{name: "negative timeout", def: Definition{TCP: "h:1", Interval: sec, Timeout: -sec}, wantErr: "Timeout: -1s is negative"},
		{name: "bad url", def: Definition{HTTP: "http://[::1", Interval: sec}, wantErr: "HTTP: \"http://[::1\" is not a URL"},
		{name: "url without scheme", def: Definition{HTTP: "127.0.0.1:8080/health", Interval: sec}, wantErr: "HTTP: \"127.0.0.1:8080/health\""},
		{name: "ftp url", def: Definition{HTTP: "ftp://h/x", Interval: sec}, wantErr: "the scheme must be http or https"},
		{name: "url without host", def: Definition{HTTP: "http:///x", Interval: sec}, wantErr: "has no host"},
		{name: "bad method", def: Definition{HTTP: "http://h/", Method: "GE T", Interval: sec}, wantErr: "Method: \"GE T\" is not an HTTP method"},
		{name: "bad header", def: Definition{HTTP: "http://h/", Header: map[string][]string{"X Bad": {"1"}}, Interval: sec}, wantErr: "Header: \"X Bad\" is not a valid header name"},
		{name: "first of several bad headers", def: Definition{HTTP: "http://h/", Header: map[string][]string{"Z Bad": {"1"}, "M Bad": {"1"}, "B Bad": {"1"}}, Interval: sec}, wantErr: "Header: \"B Bad\" is not a valid header name"},
		{name: "tcp no port", def: Definition{TCP: "localhost", Interval: sec}, wantErr: "TCP: \"localhost\" is not host:port"},
		{name: "tcp no host", def: Definition{TCP: ":80", Interval: sec}, wantErr: "missing host"},
		{name: "tcp bad port", def: Definition{TCP: "h:http", Interval: sec}, wantErr: "port \"http\" is not a number from 1 to 65535"},
		{name: "tcp port zero", def: Definition{TCP: "h:0", Interval: sec}, wantErr: "port \"0\""},
		{name: "grpc no port", def: Definition{GRPC: "h/svc", Interval: sec}, wantErr: "GRPC: \"h/svc\" is not host:port or host:port/service"},
		{name: "script disabled", def: Definition{Args: []string{"/bin/true"}, Interval: sec}, wantErr: "Args: script checks are disabled: set enable_script_checks: true in the agent config", script: true},
		{name: "script empty command", def: Definition{Args: []string{""}, Interval: sec}, cfg: scriptsOn, wantErr: "Args: the command (Args[0]) is empty"},
		{name: "unknown status", def: Definition{TTL: sec, Status: "ok"}, wantErr: "Status: \"ok\" is not one of passing, warning, critical"},
		{name: "negative success count", def: Definition{TTL: sec, SuccessBeforePassing: -1}, wantErr: "SuccessBeforePassing: -1 is negative"},
		{name: "negative failure count", def: Definition{TTL: sec, FailuresBeforeCritical: -2}, wantErr: "FailuresBeforeCritical: -2 is negative"},
		{name: "negative warning count", def: Definition{TTL: sec, FailuresBeforeWarning: -1}, wantErr: "FailuresBeforeWarning: -1 is negative"},
		{name: "negative deregister", def: Definition{TTL: sec, DeregisterCriticalServiceAfter: -sec}, wantErr: "DeregisterCriticalServiceAfter: -1s is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.def.Validate(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate: %q, want it to contain %q", err, tc.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate: %v is not ErrInvalid", err)
			}
			if got := errors.Is(err, ErrScriptDisabled); got != tc.script {
				t.Errorf("errors.Is(%v, ErrScriptDisabled) = %v, want %v", err, got, tc.script)
			}
		})
	}
}

func TestType(t *testing.T) {
	tests := []struct {
		def  Definition
		want string
	}{
		{Definition{HTTP: "http://h/"}, TypeHTTP},
		{Definition{TCP: "h:1"}, TypeTCP},
		{Definition{GRPC: "h:1"}, TypeGRPC},
		{Definition{TTL: time.Second}, TypeTTL},
		{Definition{Args: []string{"x"}}, TypeScript},
		{Definition{}, ""},
	}
	for _, tc := range tests {
		if got := tc.def.Type(); got != tc.want {
			t.Errorf("%+v.Type() = %q, want %q", tc.def, got, tc.want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		def  Definition
		want func(Definition) string // "" when fine
	}{
		{"timeout defaults to 10s", Definition{TCP: "h:1", Interval: time.Minute}, func(d Definition) string {
			return expect(d.Timeout == DefaultTimeout, "Timeout %s", d.Timeout)
		}},
		{"default timeout independent of the interval", Definition{TCP: "h:1", Interval: 2 * time.Second}, func(d Definition) string {
			return expect(d.Timeout == DefaultTimeout, "Timeout %s", d.Timeout)
		}},
		{"explicit timeout longer than the interval kept", Definition{TCP: "h:1", Interval: time.Second, Timeout: 5 * time.Second}, func(d Definition) string {
			return expect(d.Timeout == 5*time.Second, "Timeout %s", d.Timeout)
		}},
		{"explicit timeout kept", Definition{TCP: "h:1", Interval: time.Second, Timeout: 300 * time.Millisecond}, func(d Definition) string {
			return expect(d.Timeout == 300*time.Millisecond, "Timeout %s", d.Timeout)
		}},
		{"method GET", Definition{HTTP: "http://h/", Interval: time.Second}, func(d Definition) string {
			return expect(d.Method == "GET", "Method %q", d.Method)
		}},
		{"status critical", Definition{TTL: time.Second}, func(d Definition) string {
			return expect(d.Status == StatusCritical, "Status %q", d.Status)
		}},
		{"status kept", Definition{TTL: time.Second, Status: StatusWarning}, func(d Definition) string {
			return expect(d.Status == StatusWarning, "Status %q", d.Status)
		}},
		{"failures before warning defaults to critical", Definition{TTL: time.Second, FailuresBeforeCritical: 3}, func(d Definition) string {
			return expect(d.FailuresBeforeWarning == 3, "FailuresBeforeWarning %d", d.FailuresBeforeWarning)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if msg := tc.want(tc.def.withDefaults()); msg != "" {
				t.Error(msg)
			}
		})
	}

	// The copy is deep: the caller may reuse its maps and slices.
	def := Definition{HTTP: "http://h/", Header: map[string][]string{"A": {"1"}}, Args: []string{"x"}}
	d := def.withDefaults()
	def.Header["A"][0] = "changed"
	def.Args[0] = "changed"
	if d.Header["A"][0] != "1" || d.Args[0] != "x" {
		t.Errorf("withDefaults shares Header or Args with its receiver: %v %v", d.Header, d.Args)
	}
}

func expect(ok bool, format string, args ...any) string {
	if ok {
		return ""
	}
	return "unexpected " + fmt.Sprintf(format, args...)
}
