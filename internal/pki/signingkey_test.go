package pki

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestEnsureSigningKey: the key is made once, kept across calls (tokens
// outlive restarts), private to its owner, and a broken file is an error.
func TestEnsureSigningKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	key, err := EnsureSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SigningKeyFile)
	assertMode(t, path, 0o600)
	again, err := EnsureSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Equal(key) {
		t.Error("second call returned a different key")
	}

	writeTestFile(t, path, "not a key\n")
	if _, err := EnsureSigningKey(dir); !errors.Is(err, ErrInvalidFile) {
		t.Errorf("broken key file: err = %v, want ErrInvalidFile", err)
	}
}
