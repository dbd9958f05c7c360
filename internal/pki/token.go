package pki

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Bootstrap tokens look like "abcdef.0123456789abcdef": a public token ID and
// a secret, both lower-case alphanumerics, as the Kubernetes bootstrap-token
// authenticator expects.
const (
	tokenIDLen     = 6
	tokenSecretLen = 16
	tokenAlphabet  = "abcdefghijklmnopqrstuvwxyz0123456789"
)

var tokenPattern = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// EnsureToken returns the bootstrap token stored in dir/<name>.token,
// creating the file (mode 0600) with a fresh random token if it does not
// exist. A token is never replaced: a file that does not hold a well-formed
// token is an error wrapping ErrInvalidFile, since the old token may already
// be in use by joining nodes.
func EnsureToken(dir, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+".token")
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(data))
		if !tokenPattern.MatchString(tok) {
			return "", fmt.Errorf("pki: %w", invalidFile(path, errors.New("not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16}")))
		}
		return tok, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("pki: %w", err)
	}
	tok, err := newToken()
	if err != nil {
		return "", fmt.Errorf("pki: generating token: %w", err)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	if err := writeFileAtomic(path, []byte(tok+"\n"), secretMode); err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	return tok, nil
}

func newToken() (string, error) {
	id, err := randomString(tokenIDLen)
	if err != nil {
		return "", err
	}
	secret, err := randomString(tokenSecretLen)
	if err != nil {
		return "", err
	}
	return id + "." + secret, nil
}

// randomString draws n characters uniformly from tokenAlphabet. Bytes at or
// above the largest multiple of the alphabet size are rejected so that no
// character is more likely than another.
func randomString(n int) (string, error) {
	const limit = 256 - 256%len(tokenAlphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, tokenAlphabet[int(b)%len(tokenAlphabet)])
			}
		}
	}
	return string(out), nil
}
