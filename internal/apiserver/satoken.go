package apiserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// Service account tokens are JWTs (RFC 7519) in compact JWS form, signed
// ES256 with the server's signing key (pki.EnsureSigningKey). They are
// written by hand: the whole of what kite needs is one algorithm, and no
// JOSE library is in the module graph.
const (
	// tokenIssuer is the iss claim, and the default (and only API)
	// audience, as upstream's default --service-account-issuer.
	tokenIssuer = "https://kubernetes.default.svc.cluster.local"
	// tokenAlg is the one JWS algorithm kite signs and accepts.
	tokenAlg = "ES256"
	// serviceAccountUserPrefix starts a service account's user name.
	serviceAccountUserPrefix = "system:serviceaccount:"
	// Groups of every service account, and of those of one namespace
	// (suffix the namespace).
	serviceAccountsGroup     = "system:serviceaccounts"
	serviceAccountsNSGroupPf = "system:serviceaccounts:"
	// tokenLeeway tolerates clocks of clients a little apart from ours
	// when checking nbf and exp.
	tokenLeeway = time.Minute
)

// Token lifetimes, as upstream's TokenRequest: an hour unless asked,
// never less than ten minutes, never more than 2^32 seconds.
const (
	defaultTokenSeconds = 3600
	minTokenSeconds     = 600
	maxTokenSeconds     = 1 << 32
)

// tokenClaims are the claims of a bound service account token.
type tokenClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  []string         `json:"aud"`
	Expiry    int64            `json:"exp"`
	IssuedAt  int64            `json:"iat"`
	NotBefore int64            `json:"nbf"`
	ID        string           `json:"jti,omitempty"`
	Kube      kubernetesClaims `json:"kubernetes.io"`
}

// kubernetesClaims is the private "kubernetes.io" claim: what the token
// is for, by name and UID, so that deleting the account (or the pod it is
// bound to) revokes it.
type kubernetesClaims struct {
	Namespace      string     `json:"namespace"`
	ServiceAccount objectRef  `json:"serviceaccount"`
	Pod            *objectRef `json:"pod,omitempty"`
}

type objectRef struct {
	Name string    `json:"name"`
	UID  types.UID `json:"uid"`
}

type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
}

// tokenSigner signs and verifies service account tokens with one key.
type tokenSigner struct {
	key *ecdsa.PrivateKey
	kid string
}

func newTokenSigner(key *ecdsa.PrivateKey) (*tokenSigner, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("service account signing key: %w", err)
	}
	// The key ID is a digest of the public key, as upstream derives it,
	// so verifiers holding several keys can pick the right one.
	sum := sha256.Sum256(der)
	return &tokenSigner{key: key, kid: b64(sum[:])}, nil
}

var b64 = base64.RawURLEncoding.EncodeToString

// serviceAccountUsername is the user name (and token subject) of the
// service account ns/name.
func serviceAccountUsername(ns, name string) string {
	return serviceAccountUserPrefix + ns + ":" + name
}

// claimsFor are the claims of a new token for the service account ns/sa,
// bound to pod when it is not nil, valid from now for seconds.
func claimsFor(ns string, sa objectRef, pod *objectRef, audiences []string, now time.Time, seconds int64) tokenClaims {
	return tokenClaims{
		Issuer: tokenIssuer, Subject: serviceAccountUsername(ns, sa.Name), Audience: audiences,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Unix() + seconds, ID: string(uuid.NewUUID()),
		Kube: kubernetesClaims{Namespace: ns, ServiceAccount: sa, Pod: pod},
	}
}

// sign encodes and signs claims.
func (s *tokenSigner) sign(c tokenClaims) (string, error) {
	h, err := json.Marshal(jwsHeader{Alg: tokenAlg, Kid: s.kid})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := b64(h) + "." + b64(p)
	digest := sha256.Sum256([]byte(input))
	r, sig, err := ecdsa.Sign(rand.Reader, s.key, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	// JWS wants r and s as fixed-size big-endian halves (RFC 7518 3.4),
	// not the ASN.1 of x509.
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	sig.FillBytes(out[32:])
	return input + "." + b64(out), nil
}

// errNotOurToken: the string is not a JWT signed by our key. Callers try
// other authenticators, or answer 401.
var errNotOurToken = errors.New("not a service account token of this cluster")

// verify checks a token's form, signature, issuer, audience and times,
// and returns its claims. Whether the account still exists is the
// caller's question.
func (s *tokenSigner) verify(token string, now time.Time) (*tokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errNotOurToken
	}
	var h jwsHeader
	if err := decodeSegment(parts[0], &h); err != nil || h.Alg != tokenAlg {
		return nil, errNotOurToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, errNotOurToken
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&s.key.PublicKey, digest[:], r, ss) {
		return nil, errNotOurToken
	}
	var c tokenClaims
	if err := decodeSegment(parts[1], &c); err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	switch {
	case c.Issuer != tokenIssuer:
		return nil, fmt.Errorf("token issuer %q is not %q", c.Issuer, tokenIssuer)
	case !contains(c.Audience, tokenIssuer):
		return nil, fmt.Errorf("token audiences %q do not include the API server's %q", c.Audience, tokenIssuer)
	case now.Add(-tokenLeeway).Unix() >= c.Expiry:
		return nil, errors.New("token has expired")
	case c.NotBefore > now.Add(tokenLeeway).Unix():
		return nil, errors.New("token is not valid yet")
	case c.Subject != serviceAccountUsername(c.Kube.Namespace, c.Kube.ServiceAccount.Name):
		return nil, fmt.Errorf("token subject %q does not match its service account", c.Subject)
	}
	return &c, nil
}

// decodeSegment decodes one base64url JSON segment of a JWS (the first
// JSON value in it: the signature over the segment, checked before the
// claims are trusted, rules out anything after it that we did not write).
func decodeSegment(seg string, into any) error {
	data, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.NewDecoder(bytes.NewReader(data)).Decode(into)
}
