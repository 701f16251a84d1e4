package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ACL policies: what a token may do (read, write) and what a request
// without a known token may (allow, deny).
const (
	PolicyRead  = "read"
	PolicyWrite = "write"
	PolicyAllow = "allow"
	PolicyDeny  = "deny"
)

// ACLConfig holds the acl.* keys: API tokens with read or write policies.
type ACLConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// DefaultPolicy applies to requests without a known token: allow
	// (everything) or deny (nothing).
	DefaultPolicy string     `mapstructure:"default_policy"`
	Tokens        []ACLToken `mapstructure:"tokens"`
}

// ACLToken is one API token. Secrets are compared in constant time and
// never logged.
type ACLToken struct {
	Secret string `mapstructure:"secret"`
	Policy string `mapstructure:"policy"`
}

// Validate checks the acl.* keys.
func (c *ACLConfig) Validate() error {
	switch c.DefaultPolicy {
	case PolicyAllow, PolicyDeny:
	default:
		return fmt.Errorf("acl.default_policy: %q: want allow or deny", c.DefaultPolicy)
	}
	seen := map[string]bool{}
	for i, t := range c.Tokens {
		if len(t.Secret) < 16 {
			return fmt.Errorf("acl.tokens[%d].secret: must be at least 16 characters", i)
		}
		if t.Policy != PolicyRead && t.Policy != PolicyWrite {
			return fmt.Errorf("acl.tokens[%d].policy: %q: want read or write", i, t.Policy)
		}
		if seen[t.Secret] {
			return fmt.Errorf("acl.tokens[%d].secret: appears twice", i)
		}
		seen[t.Secret] = true
	}
	return nil
}

// requestToken extracts the API token as Consul clients send it:
// X-Consul-Token, Authorization: Bearer, or ?token=.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("token")
}

// policyFor returns the policy of token: read, write, or the default
// policy's meaning (write for allow, "" for deny) for an unknown or
// missing token. Every configured secret is compared, in constant time
// over hashes, so timing reveals neither which token matched nor its
// length.
func (c *ACLConfig) policyFor(token string) string {
	got := sha256.Sum256([]byte(token))
	policy := ""
	for _, t := range c.Tokens {
		want := sha256.Sum256([]byte(t.Secret))
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 && token != "" {
			policy = t.Policy
		}
	}
	if policy != "" {
		return policy
	}
	if c.DefaultPolicy == PolicyAllow {
		return PolicyWrite
	}
	return ""
}

// withACL enforces API tokens: GET and HEAD need read (or write), every
// other method needs write, and so does every request to the gossip
// keyring (its list carries the encryption keys, which are secrets only
// write tokens may see). Denied requests get 403 with a JSON message.
// /metrics counts as a read.
func (a *Server) withACL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acl := a.cfg().ACL
		// The web page's static files carry no data: the page asks for a
		// token and sends it with its own API requests.
		if !acl.Enabled || isPagePath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		need := PolicyWrite
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !holdsSecrets(r.URL.Path) {
			need = PolicyRead
		}
		have := acl.policyFor(requestToken(r))
		if have == PolicyWrite || (have == PolicyRead && need == PolicyRead) {
			next.ServeHTTP(w, r)
			return
		}
		why := ""
		if secret, ok := secretPaths[r.URL.Path]; ok {
			why = " (" + secret + ": reading it needs write access too)"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]string{"error": "Permission denied: this request needs a token with " + need +
			" access" + why + "; send it in X-Consul-Token, Authorization: Bearer, or ?token="})
	})
}

// secretPaths are the paths that answer with secrets even to a GET, with
// what they hold: the gossip keyring's list names the encryption keys,
// and the agent's command line may hold the gossip key.
var secretPaths = map[string]string{
	"/v1/operator/keyring": "the gossip keyring holds the encryption keys",
	"/debug/pprof/cmdline": "the agent's command line may hold the gossip encryption key",
}

// holdsSecrets reports whether path answers with secrets even to a GET.
func holdsSecrets(path string) bool {
	_, ok := secretPaths[path]
	return ok
}

// isPagePath reports whether path is the web page or the redirect to it.
func isPagePath(path string) bool {
	return path == "/" || path == "/ui" || strings.HasPrefix(path, "/ui/")
}
