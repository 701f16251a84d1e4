package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// ErrNoEncryption is returned by keyring operations when gossip
// encryption is off.
var ErrNoEncryption = errors.New("gossip encryption is not enabled on this agent (start it with --encrypt)")

// KeyringResponse is Consul's operator keyring answer for one pool.
type KeyringResponse struct {
	WAN         bool
	Datacenter  string
	Segment     string
	Messages    map[string]string
	Keys        map[string]int
	PrimaryKeys map[string]int
	NumNodes    int
}

// KeyringOp runs a cluster-wide keyring operation through Serf's key
// manager: "list", "install", "use" or "remove". Install, use and remove
// reach every member; the error reports nodes that failed.
func (a *Agent) KeyringOp(op, key string) (*KeyringResponse, error) {
	if !a.serf.EncryptionEnabled() {
		return nil, ErrNoEncryption
	}
	if op != "list" {
		if _, err := decodeKey(key); err != nil {
			return nil, fmt.Errorf("Key: %v: %w", err, ErrInvalid)
		}
	}
	km := a.serf.KeyManager()
	var resp *serf.KeyResponse
	var err error
	// Every operation is idempotent, so a query that missed some answers
	// (a member slow to respond) is simply asked again.
	for attempt := 0; attempt < 3; attempt++ {
		switch op {
		case "list":
			resp, err = km.ListKeys()
		case "install":
			resp, err = km.InstallKey(key)
		case "use":
			resp, err = km.UseKey(key)
		case "remove":
			resp, err = km.RemoveKey(key)
		default:
			return nil, fmt.Errorf("unknown keyring operation %q: %w", op, ErrInvalid)
		}
		if err == nil {
			break
		}
		a.logger.Warn("keyring operation incomplete; retrying", "op", op, "attempt", attempt+1, "err", err)
	}
	out := &KeyringResponse{Datacenter: a.cfg.Load().Datacenter, Messages: map[string]string{}, Keys: map[string]int{}, PrimaryKeys: map[string]int{}}
	if resp != nil {
		out.NumNodes = resp.NumNodes
		for k, v := range resp.Messages {
			out.Messages[k] = v
		}
		for k, v := range resp.Keys {
			out.Keys[k] = v
		}
		for k, v := range resp.PrimaryKeys {
			out.PrimaryKeys[k] = v
		}
	}
	if err != nil {
		msgs := make([]string, 0, len(out.Messages))
		for n, m := range out.Messages {
			msgs = append(msgs, n+": "+m)
		}
		return out, fmt.Errorf("keyring %s: %v %s", op, err, strings.Join(msgs, "; "))
	}
	a.logger.Info("keyring operation done", "op", op, "nodes", out.NumNodes)
	return out, nil
}

// apiKeyring serves /v1/operator/keyring: GET lists, POST installs, PUT
// makes primary, DELETE removes (body {"Key": "<base64>"}).
func (a *Agent) apiKeyring(w http.ResponseWriter, r *http.Request) (any, error) {
	op := map[string]string{http.MethodGet: "list", http.MethodPost: "install", http.MethodPut: "use", http.MethodDelete: "remove"}[r.Method]
	var body struct{ Key string }
	if op != "list" {
		b, err := readBody(r)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, errorf(http.StatusBadRequest, "%v", jsonError(err))
		}
	}
	resp, err := a.KeyringOp(op, body.Key)
	switch {
	case errors.Is(err, ErrNoEncryption):
		return nil, errorf(http.StatusBadRequest, "%v", err)
	case err != nil:
		return nil, err
	}
	if op == "list" {
		return []*KeyringResponse{resp}, nil
	}
	return nil, nil
}
