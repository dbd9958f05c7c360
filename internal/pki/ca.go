package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const (
	// CACertFile and CAKeyFile are the CA's file names inside a state dir.
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	// CACommonName is the subject CN of a CA created by EnsureCA.
	CACommonName = "kite-ca"

	caValidity = 10 * 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a peer whose clock is a little
	// behind still accepts a certificate issued just now.
	clockSkew = 5 * time.Minute
)

// CA is a certificate authority loaded from, or created in, a state dir.
type CA struct {
	// Cert is the parsed CA certificate and CertPEM its PEM encoding, ready
	// to embed in a kubeconfig.
	Cert    *x509.Certificate
	CertPEM []byte
	// CertFile is the path of the CA certificate, for flags such as
	// --client-ca-file.
	CertFile string

	key crypto.Signer
}

// EnsureCA loads the CA in dir, or creates it (ECDSA P-256, CN kite-ca, valid
// for ten years) when dir has no CA certificate yet. dir is created with mode
// 0700 if needed. An existing CA is never replaced: if its files cannot be
// used the error wraps ErrInvalidFile and names the file.
func EnsureCA(dir string) (*CA, error) {
	certFile := filepath.Join(dir, CACertFile)
	keyFile := filepath.Join(dir, CAKeyFile)
	_, err := os.Stat(certFile)
	switch {
	case err == nil:
		return loadCA(certFile, keyFile, time.Now())
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("pki: %w", err)
	}
	// No certificate: either a first run or one interrupted after writing
	// the key. Nothing can trust a CA that was never written, so start over.
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return createCA(certFile, keyFile, time.Now())
}

func loadCA(certFile, keyFile string, now time.Time) (*CA, error) {
	cert, certPEM, err := readCert(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: loading CA: %w", err)
	}
	key, err := readKey(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pki: CA certificate %s exists but its key is missing: %w", certFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: loading CA: %w", err)
	}
	switch {
	case !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("pki: loading CA: %w", invalidFile(certFile, errors.New("not a CA certificate")))
	case now.After(cert.NotAfter):
		return nil, fmt.Errorf("pki: loading CA: %w", invalidFile(certFile, fmt.Errorf("expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))))
	case !keyMatches(cert, key):
		return nil, fmt.Errorf("pki: loading CA: %w", invalidFile(keyFile, fmt.Errorf("key does not match certificate %s", certFile)))
	}
	return &CA{Cert: cert, CertPEM: certPEM, CertFile: certFile, key: key}, nil
}

func createCA(certFile, keyFile string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		// SerialNumber is left nil: crypto/x509 then picks a random one.
		// SubjectKeyId is likewise derived from the key for CA templates.
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing new CA certificate: %w", err)
	}
	certPEM := encodeCert(der)
	if err := writePair(certFile, certPEM, keyFile, key); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: certPEM, CertFile: certFile, key: key}, nil
}

// writePair writes the key first and the certificate last, so that a
// certificate on disk always has its key next to it.
func writePair(certFile string, certPEM []byte, keyFile string, key crypto.Signer) error {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("pki: encoding key for %s: %w", keyFile, err)
	}
	if err := writeFileAtomic(keyFile, keyPEM, secretMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, publicMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// Pool returns a new pool holding only the CA certificate; callers may add
// to it freely.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}
