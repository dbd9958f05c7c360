package pki

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	tok, err := EnsureToken(dir, "bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	if !tokenPattern.MatchString(tok) {
		t.Errorf("token %q is not in bootstrap-token format", tok)
	}
	path := filepath.Join(dir, "bootstrap.token")
	assertMode(t, path, 0o600)

	again, err := EnsureToken(dir, "bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	if again != tok {
		t.Errorf("second call returned %q, want %q", again, tok)
	}
	other, err := EnsureToken(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	if other == tok {
		t.Error("two token files hold the same token")
	}
}

func TestEnsureTokenAcceptsHandWritten(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "join.token"), "  abcdef.0123456789abcdef\n\n")
	tok, err := EnsureToken(dir, "join")
	if err != nil {
		t.Fatal(err)
	}
	if tok != "abcdef.0123456789abcdef" {
		t.Errorf("token = %q", tok)
	}
}

func TestEnsureTokenRefusesMalformed(t *testing.T) {
	for _, content := range []string{"", "ABCDEF.0123456789abcdef", "abcdef0123456789abcdef", "abcde.0123456789abcdef"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "join.token")
		writeTestFile(t, path, content)
		_, err := EnsureToken(dir, "join")
		if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), path) {
			t.Errorf("content %q: err = %v, want ErrInvalidFile naming %s", content, err, path)
		}
	}
}

func TestRandomStringUsesWholeAlphabet(t *testing.T) {
	s, err := randomString(4000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tokenAlphabet {
		if !strings.ContainsRune(s, c) {
			t.Errorf("%q never drawn in 4000 characters", c)
		}
	}
	if strings.Trim(s, tokenAlphabet) != "" {
		t.Error("drew characters outside the alphabet")
	}
}
