package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/test/testutil"
)

func TestACLMatrix(t *testing.T) {
	const readTok, writeTok = "read-token-0123456789", "write-token-0123456789"
	for _, def := range []string{httpapi.PolicyDeny, httpapi.PolicyAllow} {
		t.Run("default "+def, func(t *testing.T) {
			cfg := testConfig(t, "alpha")
			cfg.ACL = httpapi.ACLConfig{Enabled: true, DefaultPolicy: def, Tokens: []httpapi.ACLToken{{Secret: readTok, Policy: httpapi.PolicyRead}, {Secret: writeTok, Policy: httpapi.PolicyWrite}}}
			a := startAgent(t, cfg)
			cases := []struct {
				who    string
				set    func(*http.Request)
				get    int
				put    int
				metric int
			}{
				{"no token", func(*http.Request) {}, map[string]int{httpapi.PolicyDeny: 403, httpapi.PolicyAllow: 200}[def], map[string]int{httpapi.PolicyDeny: 403, httpapi.PolicyAllow: 200}[def], map[string]int{httpapi.PolicyDeny: 403, httpapi.PolicyAllow: 200}[def]},
				{"unknown token", func(r *http.Request) { r.Header.Set("X-Consul-Token", "nope-nope-nope-nope") }, map[string]int{httpapi.PolicyDeny: 403, httpapi.PolicyAllow: 200}[def], map[string]int{httpapi.PolicyDeny: 403, httpapi.PolicyAllow: 200}[def], map[string]int{httpapi.PolicyDeny: 403, httpapi.PolicyAllow: 200}[def]},
				{"read header", func(r *http.Request) { r.Header.Set("X-Consul-Token", readTok) }, 200, 403, 200},
				{"read bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+readTok) }, 200, 403, 200},
				{"write query", func(r *http.Request) { q := r.URL.Query(); q.Set("token", writeTok); r.URL.RawQuery = q.Encode() }, 200, 200, 200},
				{"write header", func(r *http.Request) { r.Header.Set("X-Consul-Token", writeTok) }, 200, 200, 200},
			}
			for _, tc := range cases {
				for _, m := range []struct {
					method, path, body string
					want               int
				}{
					{"GET", "/v1/catalog/services", "", tc.get},
					{"PUT", "/v1/agent/service/register", `{"Name":"web","Port":1}`, tc.put},
					{"GET", "/metrics", "", tc.metric},
				} {
					req, _ := http.NewRequest(m.method, "http://"+a.HTTPAddr()+m.path, strings.NewReader(m.body))
					tc.set(req)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					var b [512]byte
					n, _ := resp.Body.Read(b[:])
					resp.Body.Close()
					if resp.StatusCode != m.want {
						t.Errorf("%s %s %s: %d, want %d", tc.who, m.method, m.path, resp.StatusCode, m.want)
					}
					if resp.StatusCode == 403 && !strings.Contains(string(b[:n]), `"error"`) {
						t.Errorf("403 without a JSON message: %s", b[:n])
					}
				}
			}
		})
	}
}

func TestACLConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		acl  httpapi.ACLConfig
		want string
	}{
		{httpapi.ACLConfig{Enabled: true, DefaultPolicy: "maybe"}, "acl.default_policy"},
		{httpapi.ACLConfig{Enabled: true, DefaultPolicy: "deny", Tokens: []httpapi.ACLToken{{Secret: "short", Policy: "read"}}}, "acl.tokens[0].secret"},
		{httpapi.ACLConfig{Enabled: true, DefaultPolicy: "deny", Tokens: []httpapi.ACLToken{{Secret: "long-enough-secret-x", Policy: "admin"}}}, "acl.tokens[0].policy"},
	} {
		cfg := testConfig(t, "a")
		cfg.ACL = tc.acl
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.acl, err, tc.want)
		}
	}
}

// testCA writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir and returns their paths.
func testCA(t *testing.T, dir string) (ca, cert, key, clientCert, clientKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chorus test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
		return p
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		kb, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	cert, key = issue("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

func TestHTTPSWithTestCA(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key, ccert, ckey := testCA(t, dir)
	cfg := testConfig(t, "secure")
	cfg.HTTPSPort = testutil.FreePort(t)
	cfg.TLS = httpapi.TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca, VerifyIncoming: true}
	a := startAgent(t, cfg)

	pool := x509.NewCertPool()
	pemCA, _ := os.ReadFile(ca)
	pool.AppendCertsFromPEM(pemCA)
	get := func(tc *tls.Config) error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Get("https://" + a.HTTPSAddr() + "/v1/agent/self")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(&tls.Config{RootCAs: pool}); err == nil {
		t.Fatal("verify_incoming: a client without a certificate got through")
	}
	pair, err := tls.LoadX509KeyPair(ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	if err := get(&tls.Config{}); err == nil {
		t.Fatal("a client that does not trust the test CA accepted the server")
	}
	bad := testConfig(t, "bad")
	bad.HTTPSPort = 1
	bad.TLS = httpapi.TLSConfig{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: key}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("missing cert: %v", err)
	}
}
