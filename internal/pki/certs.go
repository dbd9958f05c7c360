package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	// RenewBefore is how close to expiry a leaf certificate is reissued.
	RenewBefore = 30 * 24 * time.Hour

	leafValidity = 365 * 24 * time.Hour
)

// DefaultServingHosts are put in every serving certificate: what clients on
// the node itself and in-cluster clients use to reach the API server. The
// service IP (10.96.0.1) and node IPs are the caller's to add.
var DefaultServingHosts = []string{
	"localhost",
	"127.0.0.1",
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

// leafSpec is what a leaf certificate must say; an existing certificate is
// kept only if it still says all of it.
type leafSpec struct {
	commonName string
	orgs       []string
	dnsNames   []string
	ips        []net.IP
	usage      x509.ExtKeyUsage
}

// EnsureServingCert returns the paths of dir/<name>.crt and dir/<name>.key, a
// TLS server pair signed by ca and valid for DefaultServingHosts plus hosts
// (IP literals become IP SANs, anything else a DNS SAN). An existing pair is
// kept unless it is unreadable, not signed by ca, lacks one of those names or
// expires within RenewBefore; then a new pair is issued. Extra names on an
// existing certificate do not cause a reissue.
func (ca *CA) EnsureServingCert(dir, name string, hosts []string) (certFile, keyFile string, err error) {
	dnsNames, ips := splitHosts(slices.Concat(DefaultServingHosts, hosts))
	return ca.ensureLeaf(dir, name, leafSpec{
		commonName: name,
		dnsNames:   dnsNames,
		ips:        ips,
		usage:      x509.ExtKeyUsageServerAuth,
	})
}

// EnsureClientCert returns the paths of dir/<name>.crt and dir/<name>.key, a
// TLS client pair signed by ca whose subject is CN=commonName, O=orgs — the
// user name and groups the API server derives from it (for example
// kubernetes-admin in system:masters). An existing pair is kept unless it is
// unreadable, not signed by ca, has a different subject (orgs compared as a
// set) or expires within RenewBefore.
func (ca *CA) EnsureClientCert(dir, name, commonName string, orgs []string) (certFile, keyFile string, err error) {
	if commonName == "" {
		return "", "", fmt.Errorf("pki: client certificate %q needs a common name", name)
	}
	return ca.ensureLeaf(dir, name, leafSpec{
		commonName: commonName,
		orgs:       orgs,
		usage:      x509.ExtKeyUsageClientAuth,
	})
}

func (ca *CA) ensureLeaf(dir, name string, spec leafSpec) (certFile, keyFile string, err error) {
	if err := checkName(name); err != nil {
		return "", "", err
	}
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	now := time.Now()
	if ca.reusable(certFile, keyFile, spec, now) {
		return certFile, keyFile, nil
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	if err := ca.issue(certFile, keyFile, spec, now); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// reusable reports whether the pair on disk can be kept as is.
func (ca *CA) reusable(certFile, keyFile string, spec leafSpec, now time.Time) bool {
	cert, _, err := readCert(certFile)
	if err != nil {
		return false
	}
	key, err := readKey(keyFile)
	if err != nil {
		return false
	}
	return keyMatches(cert, key) && ca.checkLeaf(cert, spec, now) == nil
}

// checkLeaf says why cert no longer satisfies spec at time now, or returns
// nil if it does.
func (ca *CA) checkLeaf(cert *x509.Certificate, spec leafSpec, now time.Time) error {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       ca.Pool(),
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{spec.usage},
	})
	if err != nil {
		return err
	}
	if left := cert.NotAfter.Sub(now); left < RenewBefore {
		return fmt.Errorf("expires in %s", left.Round(time.Minute))
	}
	if cert.Subject.CommonName != spec.commonName {
		return fmt.Errorf("common name is %q, want %q", cert.Subject.CommonName, spec.commonName)
	}
	// Organizations are groups: a dropped group must revoke, so compare as
	// sets rather than as "at least".
	if have, want := sortedUnique(cert.Subject.Organization), sortedUnique(spec.orgs); !slices.Equal(have, want) {
		return fmt.Errorf("organizations are %q, want %q", have, want)
	}
	for _, n := range spec.dnsNames {
		if !slices.ContainsFunc(cert.DNSNames, func(h string) bool { return strings.EqualFold(h, n) }) {
			return fmt.Errorf("missing DNS name %q", n)
		}
	}
	for _, ip := range spec.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return fmt.Errorf("missing IP address %s", ip)
		}
	}
	return nil
}

func (ca *CA) issue(certFile, keyFile string, spec leafSpec, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: generating key for %s: %w", certFile, err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: spec.commonName, Organization: sortedUnique(spec.orgs)},
		DNSNames:    spec.dnsNames,
		IPAddresses: spec.ips,
		NotBefore:   now.Add(-clockSkew),
		// A leaf cannot outlive its CA.
		NotAfter:              minTime(now.Add(leafValidity), ca.Cert.NotAfter),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{spec.usage},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("pki: signing %s: %w", certFile, err)
	}
	return writePair(certFile, encodeCert(der), keyFile, key)
}

// splitHosts sorts hosts into DNS names and IP addresses, dropping empty
// entries and duplicates, keeping first-seen order.
func splitHosts(hosts []string) (dnsNames []string, ips []net.IP) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(h)
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
