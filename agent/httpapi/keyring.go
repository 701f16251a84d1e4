package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/chorusdns/chorus/agent/local"
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

// apiKeyring serves /v1/operator/keyring: GET lists, POST installs, PUT
// makes primary, DELETE removes (body {"Key": "<base64>"}).
func (a *Server) apiKeyring(w http.ResponseWriter, r *http.Request) (any, error) {
	op := map[string]string{http.MethodGet: "list", http.MethodPost: "install", http.MethodPut: "use", http.MethodDelete: "remove"}[r.Method]
	var body struct{ Key string }
	if op != "list" {
		b, err := readBody(r)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, errorf(http.StatusBadRequest, "%v", local.JSONError(err))
		}
	}
	resp, err := a.gossip.KeyringOp(op, body.Key)
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
