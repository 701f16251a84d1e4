package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/chorusdns/chorus/agent/local"
)

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
// makes primary, DELETE removes (body {"Key": "<base64>"}). Removing a key
// that is the primary key of any member is a client error (400): make
// another key primary first.
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
	if op == "remove" {
		if err := a.checkNotPrimary(body.Key); err != nil {
			return nil, err
		}
	}
	resp, err := a.gossip.KeyringOp(op, body.Key)
	if err != nil && op == "remove" {
		// The first list may have missed a member's answer; a refused
		// removal is checked again against a fresh list.
		if perr := a.checkNotPrimary(body.Key); perr != nil {
			return nil, perr
		}
	}
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

// checkNotPrimary refuses to remove key when the cluster's keyring list
// shows it as the primary key of any member. Keys are compared as the
// bytes they encode, so any base64 spelling of the primary key is caught.
// A list that fails is no reason to refuse: the removal then answers for
// itself.
func (a *Server) checkNotPrimary(key string) error {
	want, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil // not a key: the removal names the problem
	}
	list, err := a.gossip.KeyringOp("list", "")
	if list == nil || errors.Is(err, ErrNoEncryption) {
		return nil
	}
	for k, n := range list.PrimaryKeys {
		if got, err := base64.StdEncoding.DecodeString(k); err == nil && n > 0 && bytes.Equal(got, want) {
			return errorf(http.StatusBadRequest,
				"Key: it is the primary key of %d of %d members, and the primary key cannot be removed: make another key primary first (PUT /v1/operator/keyring)", n, list.NumNodes)
		}
	}
	return nil
}
