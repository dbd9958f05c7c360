package pki

import (
	"crypto/tls"
	"fmt"
)

// ServerTLSConfig returns a TLS configuration for an HTTPS server presenting
// the pair in certFile and keyFile. Clients may present a certificate; if
// they do it must chain to ca (tls.VerifyClientCertIfGiven), otherwise the
// handshake still succeeds and the request is left to token or anonymous
// authentication. NextProtos offers HTTP/2 before HTTP/1.1, which
// net/http's ServeTLS honours.
func (ca *CA) ServerTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: loading serving pair %s: %w", certFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.Pool(),
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}, nil
}
