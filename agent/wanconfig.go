package agent

import (
	"fmt"
	"strings"

	"github.com/chorusdns/chorus/agent/gossip"
	"github.com/chorusdns/chorus/catalog"
)

// validateWAN checks the WAN keys.
func (c *Config) validateWAN() error {
	if c.SerfWANPort < 0 || c.SerfWANPort > 65535 {
		return fmt.Errorf("serf_wan_port: %d is outside 0–65535", c.SerfWANPort)
	}
	if c.WANSpeakers < 1 || c.WANSpeakers > 16 {
		return fmt.Errorf("wan_speakers: %d: want 1 to 16", c.WANSpeakers)
	}
	if c.WANReconnectTimeout <= 0 {
		return fmt.Errorf("wan_reconnect_timeout: must be positive")
	}
	for i, addr := range c.RetryJoinWAN {
		if strings.TrimSpace(addr) == "" {
			return fmt.Errorf("retry_join_wan[%d]: empty address", i)
		}
	}
	if _, err := catalog.ParseFailover(c.Failover); err != nil {
		return err // it names the failover key
	}
	return nil
}

// wanConfig is the part of the WAN settings a reload applies.
func (c *Config) wanConfig() gossip.WANConfig {
	return gossip.WANConfig{Speakers: c.WANSpeakers, RetryJoin: c.RetryJoinWAN}
}
