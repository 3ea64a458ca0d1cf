// Package tlsconf builds the TLS configurations the components use to talk to
// each other over TCP (SPEC §12): a server side from a certificate and key
// file (registryd's and runnerd's --tls-cert/--tls-key) and a client side that
// trusts a CA file (--ca-file, the gateway's ca_file). Unix sockets stay plain.
//
// Files are read once, when a daemon starts or Caddy provisions, and every
// error names the file, so a misconfiguration fails at start.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Server returns a server configuration for certFile and keyFile (PEM), or
// nil when both are empty (plain TCP). One without the other is an error.
func Server(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: --tls-cert and --tls-key go together")
	}
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("tls: %v", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading %s and %s: %v", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Client returns a client configuration trusting the certificates in caFile
// (PEM, one or more) instead of the system roots, or nil when caFile is empty
// (system roots).
func Client(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := LoadPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// LoadPool reads the PEM certificates in file into a pool. A file without a
// single certificate is an error, so a key or an empty file given by mistake
// does not silently trust nothing.
func LoadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca file: %v", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca file %s: certificate %d: %v", file, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("ca file %s: no PEM certificate in it", file)
	}
	return pool, nil
}
