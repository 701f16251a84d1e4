package gossip

import (
	"fmt"
	"maps"
	"strings"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/local"
	"github.com/hashicorp/serf/serf"
)

// keyringAttempts bounds the Serf queries one keyring operation makes;
// each waits out Serf's query timeout (under a second in the lan profile
// at small sizes).
const keyringAttempts = 5

// KeyringOp runs a cluster-wide keyring operation through Serf's key
// manager: "list", "install", "use" or "remove". Install, use and remove
// reach every member; the error reports nodes that failed. The key
// manager changes the keyring object the LAN pool, the WAN pool, the
// replication and the WAN exchange share, and Serf rewrites the keyring
// file.
func (p *Pool) KeyringOp(op, key string) (*httpapi.KeyringResponse, error) {
	if !p.serf.EncryptionEnabled() {
		return nil, httpapi.ErrNoEncryption
	}
	if op != "list" {
		if _, err := DecodeKey(key); err != nil {
			return nil, fmt.Errorf("Key: %v: %w", err, local.ErrInvalid)
		}
	}
	km := p.serf.KeyManager()
	var resp *serf.KeyResponse
	var err error
	// Every operation is idempotent, so a query that missed some answers
	// (a member slow to respond, a gossip pass lost) is simply asked
	// again, up to keyringAttempts times.
	for attempt := 0; attempt < keyringAttempts; attempt++ {
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
			return nil, fmt.Errorf("unknown keyring operation %q: %w", op, local.ErrInvalid)
		}
		if err == nil {
			break
		}
		p.logger.Warn("keyring operation incomplete; retrying", "op", op, "attempt", attempt+1, "err", err)
	}
	out := &httpapi.KeyringResponse{Datacenter: p.cfg.Datacenter, Messages: map[string]string{}, Keys: map[string]int{}, PrimaryKeys: map[string]int{}}
	if resp != nil {
		out.NumNodes = resp.NumNodes
		maps.Copy(out.Messages, resp.Messages)
		maps.Copy(out.Keys, resp.Keys)
		maps.Copy(out.PrimaryKeys, resp.PrimaryKeys)
	}
	if err != nil {
		msgs := make([]string, 0, len(out.Messages))
		for n, m := range out.Messages {
			msgs = append(msgs, n+": "+m)
		}
		return out, fmt.Errorf("keyring %s: %v %s", op, err, strings.Join(msgs, "; "))
	}
	p.logger.Info("keyring operation done", "op", op, "nodes", out.NumNodes)
	return out, nil
}
