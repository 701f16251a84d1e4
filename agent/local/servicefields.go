package local

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/chorusdns/chorus/catalog"
)

// serviceConsulFields are the fields of Consul's AgentServiceRegistration
// beyond the ones Chorus's DNS reads. Those Chorus keeps are stored in
// the catalog service as registered and returned wherever Consul returns
// them; those it cannot honour (Connect proxies and gateways, the AI
// block, namespaces and partitions other than the default) are refused
// with an error naming the field, never silently dropped.
type serviceConsulFields struct {
	Ports             []catalog.ServicePort             `json:"Ports,omitempty"`
	SocketPath        string                            `json:"SocketPath,omitempty"`
	TaggedAddresses   map[string]catalog.ServiceAddress `json:"TaggedAddresses,omitempty"`
	EnableTagOverride bool                              `json:"EnableTagOverride,omitempty"`
	Locality          *catalog.Locality                 `json:"Locality,omitempty"`

	Kind      string          `json:"Kind,omitempty"`
	Proxy     json.RawMessage `json:"Proxy,omitempty"`
	Connect   json.RawMessage `json:"Connect,omitempty"`
	AI        json.RawMessage `json:"AI,omitempty"`
	Namespace string          `json:"Namespace,omitempty"`
	Partition string          `json:"Partition,omitempty"`
}

func init() {
	for k, v := range map[string]string{
		"ports": "Ports", "default": "Default", "socket_path": "SocketPath", "socketpath": "SocketPath",
		"tagged_addresses": "TaggedAddresses", "taggedaddresses": "TaggedAddresses",
		"enable_tag_override": "EnableTagOverride", "enabletagoverride": "EnableTagOverride",
		"locality": "Locality", "region": "Region", "zone": "Zone", "kind": "Kind", "proxy": "Proxy",
		"connect": "Connect", "ai": "AI", "namespace": "Namespace", "partition": "Partition",
	} {
		snakeAliases[k] = v
	}
}

// present reports whether a raw JSON field was given with a value other
// than null or an empty object.
func present(raw json.RawMessage) bool {
	s := string(raw)
	return s != "" && s != "null" && s != "{}"
}

// apply copies the kept fields onto svc, or refuses a field Chorus
// cannot honour. A service with named Ports gets their default as Port,
// as Consul reports it; Port and Ports together are refused, as Consul
// refuses them.
func (f *serviceConsulFields) apply(port int, svc *catalog.Service) error {
	switch {
	case f.Kind != "" && f.Kind != "typical":
		return fmt.Errorf("Kind %q: Chorus registers only ordinary services (no Connect proxies, gateways or other kinds): %w", f.Kind, catalog.ErrInvalid)
	case present(f.Proxy):
		return fmt.Errorf("Proxy: Chorus has no Connect service mesh, so it cannot honour a proxy configuration: %w", catalog.ErrInvalid)
	case present(f.Connect):
		return fmt.Errorf("Connect: Chorus has no Connect service mesh (no sidecars, no native Connect): %w", catalog.ErrInvalid)
	case present(f.AI):
		return fmt.Errorf("AI: Chorus does not provide Consul's AI service roles: %w", catalog.ErrInvalid)
	case f.Namespace != "" && f.Namespace != "default":
		return fmt.Errorf("Namespace %q: Chorus has only the default namespace: %w", f.Namespace, catalog.ErrInvalid)
	case f.Partition != "" && f.Partition != "default":
		return fmt.Errorf("Partition %q: Chorus has only the default partition: %w", f.Partition, catalog.ErrInvalid)
	case len(f.Ports) > 0 && port != 0:
		return fmt.Errorf("Port and Ports: cannot set both (give the default port in Ports): %w", catalog.ErrInvalid)
	}
	svc.Ports = append([]catalog.ServicePort(nil), f.Ports...)
	if len(svc.Ports) == 0 {
		svc.Ports = nil
	}
	svc.SocketPath = f.SocketPath
	if len(f.TaggedAddresses) > 0 {
		svc.TaggedAddresses = maps.Clone(f.TaggedAddresses)
	}
	svc.EnableTagOverride = f.EnableTagOverride
	if f.Locality != nil {
		l := *f.Locality
		svc.Locality = &l
	}
	svc.Port = svc.DefaultPort()
	return nil
}
