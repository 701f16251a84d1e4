package catalog

import (
	"fmt"
	"net"
	"strings"
)

// validateConsulFields checks the registration fields Chorus keeps for
// Consul's clients (Ports, SocketPath, TaggedAddresses, Locality) as
// Consul's agent does, naming the offending field.
func (s *Service) validateConsulFields() error {
	if len(s.Ports) > 0 {
		seen := make(map[string]bool, len(s.Ports))
		defaults := 0
		for _, p := range s.Ports {
			if strings.TrimSpace(p.Name) == "" {
				return fmt.Errorf("Ports.Name cannot be empty: %w", ErrInvalid)
			}
			if p.Port <= 0 || p.Port > 65535 {
				return fmt.Errorf("Ports %q: port %d is outside 1–65535: %w", p.Name, p.Port, ErrInvalid)
			}
			if seen[p.Name] {
				return fmt.Errorf("Ports.Name %q has to be unique: %w", p.Name, ErrInvalid)
			}
			seen[p.Name] = true
			if p.Default {
				defaults++
			}
		}
		if defaults != 1 {
			return fmt.Errorf("Ports: exactly one port must be marked as Default (%d are): %w", defaults, ErrInvalid)
		}
	}
	if len(s.SocketPath) > 1024 {
		return fmt.Errorf("SocketPath is longer than 1024 characters: %w", ErrInvalid)
	}
	for k, a := range s.TaggedAddresses {
		if k == "" || len(k) > 128 {
			return fmt.Errorf("TaggedAddresses key %q must be 1–128 characters: %w", k, ErrInvalid)
		}
		if a.Port < 0 || a.Port > 65535 {
			return fmt.Errorf("TaggedAddresses %q: port %d is outside 0–65535: %w", k, a.Port, ErrInvalid)
		}
		ip := net.ParseIP(a.Address)
		switch k {
		case "lan_ipv4", "wan_ipv4":
			if ip == nil || ip.To4() == nil {
				return fmt.Errorf("TaggedAddresses %q: %q must be a valid IPv4 address: %w", k, a.Address, ErrInvalid)
			}
		case "lan_ipv6", "wan_ipv6":
			if ip == nil || ip.To4() != nil {
				return fmt.Errorf("TaggedAddresses %q: %q must be a valid IPv6 address: %w", k, a.Address, ErrInvalid)
			}
		}
	}
	if l := s.Locality; l != nil && l.Region == "" && l.Zone != "" {
		return fmt.Errorf("Locality: zone cannot be set without region: %w", ErrInvalid)
	}
	return nil
}

// DefaultPort is the port of the service's Default port when it has
// named Ports, else Port.
func (s *Service) DefaultPort() int {
	for _, p := range s.Ports {
		if p.Default {
			return p.Port
		}
	}
	return s.Port
}
