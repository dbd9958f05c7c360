package pki

import (
	"bytes"
	"crypto/x509"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func parseCertFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cert, _, err := readCert(path)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestEnsureServingCert(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certFile, keyFile, err := ca.EnsureServingCert(dir, "apiserver", []string{"10.96.0.1", "node-1", "192.168.1.10"})
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, "apiserver.crt") || keyFile != filepath.Join(dir, "apiserver.key") {
		t.Errorf("paths = %s, %s", certFile, keyFile)
	}
	assertMode(t, keyFile, 0o600)

	cert := parseCertFile(t, certFile)
	for _, host := range append(slices.Clone(DefaultServingHosts), "10.96.0.1", "node-1", "192.168.1.10") {
		if _, err := cert.Verify(x509.VerifyOptions{
			DNSName:   host,
			Roots:     ca.Pool(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("not valid for %s: %v", host, err)
		}
	}

	// Same request, and a request for a subset: nothing changes.
	before := mustRead(t, certFile)
	for _, hosts := range [][]string{{"10.96.0.1", "node-1", "192.168.1.10"}, {"node-1"}} {
		if _, _, err := ca.EnsureServingCert(dir, "apiserver", hosts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, mustRead(t, certFile)) {
			t.Errorf("hosts %v: certificate reissued", hosts)
		}
	}
}

func TestEnsureServingCertReissues(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, ca *CA, dir string)
		hosts   []string
	}{
		{
			name:  "new IP",
			hosts: []string{"10.96.0.1", "192.168.1.11"},
		},
		{
			name:  "new DNS name",
			hosts: []string{"10.96.0.1", "node-2"},
		},
		{
			name:  "expires within 30 days",
			hosts: []string{"10.96.0.1"},
			prepare: func(t *testing.T, ca *CA, dir string) {
				dns, ips := splitHosts(slices.Concat(DefaultServingHosts, []string{"10.96.0.1"}))
				spec := leafSpec{commonName: "apiserver", dnsNames: dns, ips: ips, usage: x509.ExtKeyUsageServerAuth}
				issued := time.Now().Add(-leafValidity + 10*24*time.Hour)
				if err := ca.issue(filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key"), spec, issued); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "signed by another CA",
			hosts: []string{"10.96.0.1"},
			prepare: func(t *testing.T, _ *CA, dir string) {
				other := mustCA(t, t.TempDir())
				if _, _, err := other.EnsureServingCert(dir, "apiserver", []string{"10.96.0.1"}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "corrupt key",
			hosts: []string{"10.96.0.1"},
			prepare: func(t *testing.T, _ *CA, dir string) {
				writeTestFile(t, filepath.Join(dir, "apiserver.key"), "garbage")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := mustCA(t, dir)
			certFile, _, err := ca.EnsureServingCert(dir, "apiserver", []string{"10.96.0.1", "192.168.1.10"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.prepare != nil {
				tt.prepare(t, ca, dir)
			}
			before := mustRead(t, certFile)

			if _, _, err := ca.EnsureServingCert(dir, "apiserver", tt.hosts); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(before, mustRead(t, certFile)) {
				t.Fatal("certificate not reissued")
			}
			cert := parseCertFile(t, certFile)
			dns, ips := splitHosts(slices.Concat(DefaultServingHosts, tt.hosts))
			if err := ca.checkLeaf(cert, leafSpec{commonName: "apiserver", dnsNames: dns, ips: ips, usage: x509.ExtKeyUsageServerAuth}, time.Now()); err != nil {
				t.Errorf("reissued certificate: %v", err)
			}
		})
	}
}

func TestCheckLeaf(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	serving := leafSpec{commonName: "apiserver", dnsNames: []string{"kubernetes"}, ips: []net.IP{net.ParseIP("10.96.0.1")}, usage: x509.ExtKeyUsageServerAuth}
	client := leafSpec{commonName: "kubernetes-admin", orgs: []string{"system:masters"}, usage: x509.ExtKeyUsageClientAuth}
	issue := func(name string, spec leafSpec) *x509.Certificate {
		certFile := filepath.Join(dir, name+".crt")
		if err := ca.issue(certFile, filepath.Join(dir, name+".key"), spec, time.Now()); err != nil {
			t.Fatal(err)
		}
		return parseCertFile(t, certFile)
	}
	servingCert := issue("serving", serving)
	clientCert := issue("client", client)

	with := func(s leafSpec, edit func(*leafSpec)) leafSpec {
		s.orgs = slices.Clone(s.orgs)
		edit(&s)
		return s
	}
	tests := []struct {
		name   string
		cert   *x509.Certificate
		spec   leafSpec
		now    time.Time
		wantOK bool
	}{
		{"serving as issued", servingCert, serving, time.Now(), true},
		{"serving, DNS name in other case", servingCert, with(serving, func(s *leafSpec) { s.dnsNames = []string{"KUBERNETES"} }), time.Now(), true},
		{"serving, fewer names", servingCert, with(serving, func(s *leafSpec) { s.dnsNames = nil }), time.Now(), true},
		{"serving, IPv4 as IPv6-mapped", servingCert, with(serving, func(s *leafSpec) { s.ips = []net.IP{net.ParseIP("::ffff:10.96.0.1")} }), time.Now(), true},
		{"serving, missing DNS name", servingCert, with(serving, func(s *leafSpec) { s.dnsNames = append(s.dnsNames, "node-1") }), time.Now(), false},
		{"serving, missing IP", servingCert, with(serving, func(s *leafSpec) { s.ips = append(s.ips, net.ParseIP("fd00::1")) }), time.Now(), false},
		{"serving used as client", servingCert, with(serving, func(s *leafSpec) { s.usage = x509.ExtKeyUsageClientAuth }), time.Now(), false},
		{"serving, 31 days left", servingCert, serving, servingCert.NotAfter.Add(-31 * 24 * time.Hour), true},
		{"serving, 29 days left", servingCert, serving, servingCert.NotAfter.Add(-29 * 24 * time.Hour), false},
		{"serving, expired", servingCert, serving, servingCert.NotAfter.Add(time.Hour), false},
		{"client as issued", clientCert, client, time.Now(), true},
		{"client, other CN", clientCert, with(client, func(s *leafSpec) { s.commonName = "alice" }), time.Now(), false},
		{"client, group dropped", clientCert, with(client, func(s *leafSpec) { s.orgs = nil }), time.Now(), false},
		{"client, group added", clientCert, with(client, func(s *leafSpec) { s.orgs = append(s.orgs, "devs") }), time.Now(), false},
		{"client, duplicate group", clientCert, with(client, func(s *leafSpec) { s.orgs = append(s.orgs, "system:masters") }), time.Now(), true},
		{"client used as server", clientCert, with(client, func(s *leafSpec) { s.usage = x509.ExtKeyUsageServerAuth }), time.Now(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ca.checkLeaf(tt.cert, tt.spec, tt.now)
			if (err == nil) != tt.wantOK {
				t.Errorf("checkLeaf = %v, want ok=%v", err, tt.wantOK)
			}
		})
	}
}

func TestEnsureClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certFile, keyFile, err := ca.EnsureClientCert(dir, "admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, keyFile, 0o600)
	cert := parseCertFile(t, certFile)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     ca.Pool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("client certificate does not verify for client auth: %v", err)
	}
	if cert.Subject.CommonName != "kubernetes-admin" || !slices.Equal(cert.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("subject = %s", cert.Subject)
	}

	before := mustRead(t, certFile)
	if _, _, err := ca.EnsureClientCert(dir, "admin", "kubernetes-admin", []string{"system:masters"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, mustRead(t, certFile)) {
		t.Error("unchanged request reissued the certificate")
	}
	if _, _, err := ca.EnsureClientCert(dir, "admin", "kubernetes-admin", nil); err != nil {
		t.Fatal(err)
	}
	if got := parseCertFile(t, certFile).Subject.Organization; len(got) != 0 {
		t.Errorf("after dropping the group, organizations = %q", got)
	}
}

func TestLeafArgumentErrors(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	for _, name := range []string{"", "..", "a/b", ".hidden"} {
		if _, _, err := ca.EnsureServingCert(dir, name, nil); err == nil {
			t.Errorf("EnsureServingCert(%q) succeeded", name)
		}
	}
	if _, _, err := ca.EnsureClientCert(dir, "admin", "", nil); err == nil {
		t.Error("EnsureClientCert with empty CN succeeded")
	}
}
