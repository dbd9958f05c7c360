package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnsureCACreatesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first := mustCA(t, dir)

	if got := first.Cert.Subject.CommonName; got != CACommonName {
		t.Errorf("CN = %q, want %q", got, CACommonName)
	}
	if !first.Cert.IsCA {
		t.Error("certificate is not a CA")
	}
	pub, ok := first.Cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", first.Cert.PublicKey)
	}
	if life := first.Cert.NotAfter.Sub(first.Cert.NotBefore); life < 10*365*24*time.Hour {
		t.Errorf("CA valid for %s, want at least ten years", life)
	}
	assertMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	assertMode(t, dir, 0o700)

	second := mustCA(t, dir)
	if !first.Cert.Equal(second.Cert) {
		t.Error("second EnsureCA produced a different CA")
	}
	if !bytes.Equal(first.CertPEM, mustRead(t, first.CertFile)) {
		t.Error("CertPEM differs from the file on disk")
	}
}

func TestEnsureCAKeyWithoutCertStartsOver(t *testing.T) {
	// A key with no certificate is what an interrupted first run leaves.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("half-written"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := mustCA(t, dir)
	if _, err := readKey(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Errorf("key not replaced: %v", err)
	}
	if ca.Cert.Subject.CommonName != CACommonName {
		t.Errorf("CN = %q", ca.Cert.Subject.CommonName)
	}
}

func TestEnsureCARefusesUnusableFiles(t *testing.T) {
	other := mustCA(t, t.TempDir())
	otherKey := mustRead(t, filepath.Join(filepath.Dir(other.CertFile), CAKeyFile))
	leafDir := t.TempDir()
	_, leafKey, err := other.EnsureServingCert(leafDir, "leaf", nil)
	if err != nil {
		t.Fatal(err)
	}
	leafCert := mustRead(t, filepath.Join(leafDir, "leaf.crt"))

	tests := []struct {
		name     string
		cert     []byte // nil: keep the valid one
		key      []byte // nil: keep the valid one
		noKey    bool
		wantFile string
		invalid  bool // wraps ErrInvalidFile
	}{
		{name: "garbage certificate", cert: []byte("not pem"), wantFile: CACertFile, invalid: true},
		{name: "truncated certificate", cert: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), wantFile: CACertFile, invalid: true},
		{name: "garbage key", key: []byte("not pem"), wantFile: CAKeyFile, invalid: true},
		{name: "key of another CA", key: otherKey, wantFile: CAKeyFile, invalid: true},
		{name: "leaf is not a CA", cert: leafCert, key: mustRead(t, leafKey), wantFile: CACertFile, invalid: true},
		{name: "missing key", noKey: true, wantFile: CACertFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustCA(t, dir)
			certPath := filepath.Join(dir, CACertFile)
			keyPath := filepath.Join(dir, CAKeyFile)
			if tt.cert != nil {
				os.WriteFile(certPath, tt.cert, 0o644)
			}
			if tt.key != nil {
				os.WriteFile(keyPath, tt.key, 0o600)
			}
			if tt.noKey {
				os.Remove(keyPath)
			}
			before := mustRead(t, certPath)

			_, err := EnsureCA(dir)
			if err == nil {
				t.Fatal("EnsureCA succeeded, want error")
			}
			if want := filepath.Join(dir, tt.wantFile); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			if got := errors.Is(err, ErrInvalidFile); got != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalidFile) = %v, want %v", got, tt.invalid)
			}
			if !bytes.Equal(before, mustRead(t, certPath)) {
				t.Error("CA certificate was rewritten")
			}
		})
	}
}

func TestPoolIsFresh(t *testing.T) {
	ca := mustCA(t, t.TempDir())
	p := ca.Pool()
	p.AddCert(mustCA(t, t.TempDir()).Cert)
	if ca.Pool().Equal(p) {
		t.Error("adding to one pool changed the next")
	}
}
