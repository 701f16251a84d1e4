package local

import (
	"fmt"

	"github.com/chorusdns/chorus/checks"
)

// checkTypeFields are the check fields of Consul's registration JSON for
// the UDP, H2PING, Docker, alias and OS-service checks and the extra TCP,
// HTTP and output options, embedded in CheckDefinition (their JSON keys
// are Consul's; snake_case spellings are in snakeAliases).
type checkTypeFields struct {
	UDP    string `json:"UDP,omitempty"`
	H2PING string `json:"H2PING,omitempty"`
	// H2PingUseTLS defaults to true for an H2PING check when absent, as in
	// Consul (whose Go client omits a false value: through it, an H2PING
	// check always uses TLS).
	H2PingUseTLS      *bool  `json:"H2PingUseTLS,omitempty"`
	DockerContainerID string `json:"DockerContainerID,omitempty"`
	Shell             string `json:"Shell,omitempty"`
	AliasNode         string `json:"AliasNode,omitempty"`
	AliasService      string `json:"AliasService,omitempty"`
	OSService         string `json:"OSService,omitempty"`
	DisableRedirects  bool   `json:"DisableRedirects,omitempty"`
	TCPUseTLS         bool   `json:"TCPUseTLS,omitempty"`
	OutputMaxSize     int    `json:"OutputMaxSize,omitempty"`
	// Script is Consul's pre-1.0 shell-string script check, which Consul
	// itself no longer takes; it is refused by name rather than ignored.
	Script string `json:"Script,omitempty"`
	// Namespace and Partition are Consul Enterprise's: only the default
	// (or none) is taken; another is refused by name.
	Namespace string `json:"Namespace,omitempty"`
	Partition string `json:"Partition,omitempty"`
}

// apply copies the fields onto def, refusing what no Consul version
// Chorus follows takes.
func (f *checkTypeFields) apply(def *checks.Definition) error {
	switch {
	case f.Script != "":
		return fmt.Errorf("Script: the shell-string script check was removed from Consul; use Args (a command and its arguments)")
	case f.Namespace != "" && f.Namespace != "default":
		return fmt.Errorf("Namespace %q: Chorus has only the default namespace", f.Namespace)
	case f.Partition != "" && f.Partition != "default":
		return fmt.Errorf("Partition %q: Chorus has only the default partition", f.Partition)
	}
	def.UDP = f.UDP
	def.H2PING = f.H2PING
	def.H2PingUseTLS = f.H2PING != "" && (f.H2PingUseTLS == nil || *f.H2PingUseTLS)
	def.DockerContainerID = f.DockerContainerID
	def.Shell = f.Shell
	def.AliasNode = f.AliasNode
	def.AliasService = f.AliasService
	def.OSService = f.OSService
	def.DisableRedirects = f.DisableRedirects
	def.TCPUseTLS = f.TCPUseTLS
	def.OutputMaxSize = f.OutputMaxSize
	return nil
}
