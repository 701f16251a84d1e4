package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/dns"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md's generated table")

const (
	docPath    = "../../docs/configuration.md"
	beginTable = "<!-- BEGIN GENERATED: go test ./cmd/chorus -run TestConfigurationDoc -update -->\n"
	endTable   = "<!-- END GENERATED -->\n"
)

// TestConfigurationDoc regenerates the key table of docs/configuration.md
// from agent.Config, agent.DefaultConfig and the agent's flags and fails
// when the page differs (-update rewrites it). Every key must have a
// description and every description a key.
func TestConfigurationDoc(t *testing.T) {
	flags := newAgentCmd().Flags()
	keys := configKeys(flags)
	known := map[string]bool{}
	for _, k := range keys {
		known[k.Key] = true
		if k.Desc == "" {
			t.Errorf("key %q has no flag and no entry in keyDescriptions (configdoc_test.go)", k.Key)
		}
	}
	for k := range keyDescriptions {
		if !known[k] {
			t.Errorf("keyDescriptions describes %q, which is no config key", k)
		}
	}
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, beginTable), strings.Index(doc, endTable)
	if i < 0 || j < i {
		t.Fatalf("%s: the markers %q and %q are missing", docPath, beginTable, endTable)
	}
	want := doc[:i+len(beginTable)] + configReference(flags) + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", filepath.Clean(docPath))
		return
	}
	t.Errorf("%s is out of date with agent.Config, its defaults or the agent's flags; run\n\tgo test ./cmd/chorus -run TestConfigurationDoc -update\nand commit the result", docPath)
}

// envSamples are values, different from the defaults, that the agent
// accepts for string keys whose values it checks.
var envSamples = map[string]string{
	"bind": "127.0.0.2", "advertise": "127.0.0.3", "client": "127.0.0.4",
	"log_level": "warn", "encrypt": "AAECAwQFBgcICQoLDA0ODw==", "acl.default_policy": "deny",
	"gossip_profile": "wan", "dns.policy": "hash", "domain": "example", "alt_domain": "alt.example",
	"recursors": "192.0.2.53,192.0.2.54:5353", "join": "192.0.2.1", "retry_join": "192.0.2.2,192.0.2.3",
	"dns.max_udp_size": "4096",
}

// envSkip are keys the agent accepts only together with others (TLS
// files that must exist, a burst with a rate).
var envSkip = map[string]bool{
	"tls.cert_file": true, "tls.key_file": true, "tls.ca_file": true, "tls.verify_incoming": true,
	"https_port": true, "dns.rate_limit_burst": true, "dev": true,
}

// TestConfigurationDocEnv sets each environment variable the page lists
// to a value other than the default and checks that the loaded
// configuration has it under the documented key.
func TestConfigurationDocEnv(t *testing.T) {
	for _, k := range configKeys(newAgentCmd().Flags()) {
		if k.Env == "" || envSkip[k.Key] {
			continue
		}
		t.Run(k.Key, func(t *testing.T) {
			val, ok := envSamples[k.Key]
			if !ok {
				switch k.Type {
				case "string":
					val = "doc-value"
				case "integer":
					val = "7"
				case "bool":
					val = "true"
					if strings.Contains(k.Default, "true") {
						val = "false"
					}
				case "duration":
					val = "7s"
				case "list of strings":
					val = "a,b"
				default:
					t.Fatalf("no sample for type %s", k.Type)
				}
			}
			t.Setenv(k.Env, val)
			cfg, err := loadConfig(nil, sources{}, true)
			if err != nil {
				t.Fatalf("%s=%s: %v", k.Env, val, err)
			}
			got := fieldByKey(t, reflect.ValueOf(cfg), k.Key)
			if s := formatValue(got); s != val {
				t.Fatalf("%s=%s: %s = %q", k.Env, val, k.Key, s)
			}
		})
	}
}

// fieldByKey finds the field of v whose mapstructure path is key.
func fieldByKey(t *testing.T, v reflect.Value, key string) reflect.Value {
	t.Helper()
	var find func(v reflect.Value, key string) (reflect.Value, bool)
	find = func(v reflect.Value, key string) (reflect.Value, bool) {
		head, rest, nested := strings.Cut(key, ".")
		for i := 0; i < v.NumField(); i++ {
			tag, opts, _ := strings.Cut(v.Type().Field(i).Tag.Get("mapstructure"), ",")
			if tag == "" && opts == "squash" {
				if f, ok := find(v.Field(i), key); ok {
					return f, true
				}
				continue
			}
			if tag != head {
				continue
			}
			if nested {
				return find(v.Field(i), rest)
			}
			return v.Field(i), true
		}
		return reflect.Value{}, false
	}
	f, ok := find(v, key)
	if !ok {
		t.Fatalf("no field for key %q", key)
	}
	return f
}

// formatValue writes a field back in the form the samples use.
func formatValue(v reflect.Value) string {
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		return time.Duration(v.Int()).String()
	}
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// TestDNSDoc holds docs/dns.md, the one reference for what the DNS server
// answers (dns/doc.go points to it), to the code: it must name every
// policy, every service meta key the server reads and every dns.* setting
// (the SOA record's timers as dns.soa).
func TestDNSDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/dns.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	want := []string{dns.PolicyRandom, dns.PolicyRoundRobin, dns.PolicyLeastLoaded, dns.PolicyNearest, dns.PolicyHash,
		dns.MetaPriority, dns.MetaPolicy, dns.MetaTTL, catalog.MetaFailover}
	opts := reflect.TypeOf(dns.Options{})
	for i := range opts.NumField() {
		if key, _, _ := strings.Cut(opts.Field(i).Tag.Get("mapstructure"), ","); key != "" && key != "-" {
			want = append(want, "dns."+key)
		}
	}
	for _, w := range want {
		if !strings.Contains(doc, "`"+w) {
			t.Errorf("docs/dns.md does not name `%s`", w)
		}
	}
}

// TestDocsStandAlone: the repository's docs refer only to files it holds
// (every relative link and image, and every *.md they name, relative to
// the page or to the repository root), and README.md asks for the Go
// version go.mod says.
func TestDocsStandAlone(t *testing.T) {
	const root = "../.."
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"), filepath.Join(root, "BENCHMARKS.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdName := regexp.MustCompile("[A-Za-z0-9_./-]+\\.md\\b")
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		exists := func(ref string) bool {
			for _, base := range []string{filepath.Dir(page), root} {
				if _, err := os.Stat(filepath.Join(base, ref)); err == nil {
					return true
				}
			}
			return false
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			ref, _, _ := strings.Cut(m[1], "#")
			if ref == "" || strings.Contains(ref, "://") || strings.HasPrefix(ref, "mailto:") {
				continue
			}
			if !exists(ref) {
				t.Errorf("%s links %s, which is not in the repository", filepath.Base(page), m[1])
			}
		}
		for _, ref := range mdName.FindAllString(string(b), -1) {
			if !exists(ref) {
				t.Errorf("%s names %s, which is not in the repository", filepath.Base(page), ref)
			}
		}
	}

	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	if goLine == nil || !strings.Contains(string(readme), "Go "+string(goLine[1])+" or newer") {
		t.Errorf("README.md does not ask for Go %s or newer, as go.mod does", goLine[1])
	}
}

// TestAgentHelpSaysDefaultOnce: no flag of `chorus agent --help` states
// its default twice (its usage and cobra's "(default …)" both).
func TestAgentHelpSaysDefaultOnce(t *testing.T) {
	for line := range strings.Lines(newAgentCmd().Flags().FlagUsages()) {
		if strings.Count(line, "default") > 1 || (strings.Contains(line, "unless set") && strings.Contains(line, "(default ")) {
			t.Errorf("the default is said twice: %s", strings.TrimSpace(line))
		}
	}
}

// TestReadmeDocker: README's docker run examples publish ports on
// 127.0.0.1 only, and one runs the agent the per-host way, on the host's
// network with --advertise (a bridge network makes services registered
// without an Address resolve to the container's address).
func TestReadmeDocker(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n")
	runs, hostNet := 0, false
	for _, c := range cmds {
		c = strings.TrimSpace(c)
		if !strings.HasPrefix(c, "docker run ") {
			continue
		}
		runs++
		f := strings.Fields(c)
		for i, w := range f {
			if w == "-p" && i+1 < len(f) && !strings.HasPrefix(f[i+1], "127.0.0.1:") {
				t.Errorf("README publishes %s beyond 127.0.0.1: %s", f[i+1], c)
			}
		}
		if strings.Contains(c, "--network host") && strings.Contains(c, "--advertise ") {
			hostNet = true
		}
	}
	if runs == 0 || !hostNet {
		t.Errorf("README has %d docker run examples, none with --network host and --advertise", runs)
	}
}
