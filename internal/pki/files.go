package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrInvalidFile marks a state file that exists but cannot be used as it is:
// unparsable PEM, a key that does not match its certificate, an expired CA, a
// malformed token. Errors wrapping it also name the file.
var ErrInvalidFile = errors.New("invalid pki file")

const (
	certPEMType  = "CERTIFICATE"
	pkcs8PEMType = "PRIVATE KEY"
	ecPEMType    = "EC PRIVATE KEY"
	rsaPEMType   = "RSA PRIVATE KEY"

	dirMode    os.FileMode = 0o700
	secretMode os.FileMode = 0o600
	publicMode os.FileMode = 0o644
)

func invalidFile(path string, err error) error {
	return fmt.Errorf("%w %s: %w", ErrInvalidFile, path, err)
}

// checkName rejects names that would escape the state directory or produce
// hidden or odd file names.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("pki: invalid file name %q", name)
	}
	return nil
}

// writeFileAtomic replaces path with data so that readers see either the old
// or the new content, never a partial file. The file gets mode perm whether
// or not it existed before.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	done = true
	return nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certPEMType, Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pkcs8PEMType, Bytes: der}), nil
}

// readCert reads the first certificate of a PEM file. A missing file is
// returned as is (so callers can test fs.ErrNotExist); anything else that is
// wrong wraps ErrInvalidFile.
func readCert(path string) (*x509.Certificate, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != certPEMType {
		return nil, nil, invalidFile(path, errors.New("no PEM CERTIFICATE block"))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, invalidFile(path, err)
	}
	return cert, data, nil
}

// readKey reads a PEM private key in PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) form,
// so that a CA supplied by an operator is usable too.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, invalidFile(path, errors.New("no PEM block"))
	}
	var key any
	switch block.Type {
	case pkcs8PEMType:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case ecPEMType:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case rsaPEMType:
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		err = fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, invalidFile(path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, invalidFile(path, fmt.Errorf("unsupported key type %T", key))
	}
	return signer, nil
}

// keyMatches reports whether key is the private half of cert's public key.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}
