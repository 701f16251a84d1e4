package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig holds the tls.* keys for the HTTPS API.
type TLSConfig struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	CAFile   string `mapstructure:"ca_file"`
	// VerifyIncoming requires clients to present a certificate signed by
	// CAFile.
	VerifyIncoming bool `mapstructure:"verify_incoming"`
}

// Validate checks the tls.* keys against https_port.
func (c *TLSConfig) Validate(httpsPort int) error {
	if httpsPort == 0 && c.CertFile == "" && c.KeyFile == "" {
		return nil
	}
	if httpsPort <= 0 {
		return fmt.Errorf("https_port: set it to serve the API over TLS (tls.cert_file is set)")
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return fmt.Errorf("tls.cert_file and tls.key_file: both are required with https_port")
	}
	if c.VerifyIncoming && c.CAFile == "" {
		return fmt.Errorf("tls.ca_file: required with tls.verify_incoming")
	}
	_, err := c.ServerConfig()
	return err
}

// ServerConfig loads the certificate, key and CA into a tls.Config.
func (c *TLSConfig) ServerConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/tls.key_file: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: no PEM certificates in %s", c.CAFile)
		}
		cfg.ClientCAs = pool
		if c.VerifyIncoming {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}
