package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SigningKeyFile is the service account token signing key's file name
// inside a state dir (kubeadm calls its pair sa.key/sa.pub).
const SigningKeyFile = "sa.key"

// EnsureSigningKey returns the service account token signing key stored in
// dir/sa.key, creating it (ECDSA P-256, mode 0600) when missing. The key is
// never replaced: tokens already handed to pods were signed with it, so a
// file that cannot be used is an error wrapping ErrInvalidFile.
func EnsureSigningKey(dir string) (*ecdsa.PrivateKey, error) {
	path := filepath.Join(dir, SigningKeyFile)
	key, err := readKey(path)
	switch {
	case err == nil:
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("pki: %w", invalidFile(path, errors.New("signing key must be ECDSA P-256")))
		}
		return ec, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("pki: signing key: %w", err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating signing key: %w", err)
	}
	data, err := encodeKey(ec)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding signing key: %w", err)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := writeFileAtomic(path, data, secretMode); err != nil {
		return nil, fmt.Errorf("pki: writing %s: %w", path, err)
	}
	return ec, nil
}
