package agent

import (
	"maps"
	"net"
	"strconv"
)

// debugConfig is the part of Consul's DebugConfig (in /v1/agent/self)
// that describes what a Chorus agent has, under Consul's key names, with
// Consul's renderings: addresses as "tcp://ip:port", secrets as
// "hidden", a port that is off as -1. Keys for what Chorus does not have
// (servers, Raft, Connect, ACL replication…) are left out, not faked.
// Keys that start with Chorus are Chorus's own DNS settings that Consul
// has no key for; the web page (/ui/) reads them to show the DNS answer
// this agent gives.
func (a *Agent) debugConfig() map[string]any {
	cfg := a.cfg.Load()
	d := cfg.dnsConfig()
	httpsPort := -1
	httpsAddrs := []string{}
	if a.httpsLn != nil {
		httpsPort = portOf(a.httpsLn.Addr().String())
		httpsAddrs = append(httpsAddrs, "tcp://"+a.httpsLn.Addr().String())
	}
	serfAddr := ""
	if a.gossip != nil {
		serfAddr = a.SerfAddr()
	}
	advertise, _, _ := net.SplitHostPort(serfAddr)
	encrypt := ""
	if cfg.Encrypt != "" {
		encrypt = "hidden"
	}
	nodeMeta := map[string]string{"consul-network-segment": ""}
	maps.Copy(nodeMeta, cfg.NodeMeta)
	return map[string]any{
		"Datacenter":              cfg.Datacenter,
		"PrimaryDatacenter":       cfg.Datacenter,
		"NodeName":                cfg.NodeName,
		"NodeMeta":                nodeMeta,
		"DataDir":                 a.dataDir,
		"LogLevel":                cfg.LogLevel,
		"ServerMode":              false,
		"DevMode":                 cfg.Dev,
		"Version":                 Version,
		"BindAddr":                cfg.Bind,
		"AdvertiseAddrLAN":        advertise,
		"ClientAddrs":             []string{cfg.Client},
		"SerfBindAddrLAN":         "tcp://" + net.JoinHostPort(cfg.Bind, strconv.Itoa(portOf(serfAddr))),
		"SerfAdvertiseAddrLAN":    "tcp://" + serfAddr,
		"SerfPortLAN":             portOf(serfAddr),
		"HTTPPort":                portOf(a.HTTPAddr()),
		"HTTPAddrs":               []string{"tcp://" + a.HTTPAddr()},
		"HTTPSPort":               httpsPort,
		"HTTPSAddrs":              httpsAddrs,
		"DNSPort":                 portOf(a.DNSAddr()),
		"DNSAddrs":                []string{"tcp://" + a.DNSAddr(), "udp://" + a.DNSAddr()},
		"DNSDomain":               d.Domain,
		"DNSAltDomain":            d.AltDomain,
		"DNSRecursors":            append([]string{}, d.Recursors...),
		"DNSOnlyPassing":          d.OnlyPassing,
		"DNSNodeTTL":              d.NodeTTL.String(),
		"ChorusDNSPolicy":         d.Policy,
		"ChorusDNSZoneFailover":   d.ZoneFailover,
		"StartJoinAddrsLAN":       append([]string{}, cfg.Join...),
		"RetryJoinLAN":            append([]string{}, cfg.RetryJoin...),
		"RetryJoinIntervalLAN":    cfg.RetryInterval.String(),
		"RetryJoinMaxAttemptsLAN": cfg.RetryMax,
		"EncryptKey":              encrypt,
		"EnableScriptChecks":      cfg.EnableScriptChecks,
		"EnableDebug":             cfg.EnableDebug,
		"ACLsEnabled":             cfg.ACL.Enabled,
	}
}

// portOf is the port of "host:port", 0 if there is none.
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
