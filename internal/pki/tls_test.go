package pki

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// handshake connects a client and a server over an in-memory pipe and
// returns the server's view of the connection, or the first error from
// either side. After the handshake the server sends one byte and the client
// reads it: with TLS 1.3 the server checks the client certificate after the
// client has finished, so a rejection only reaches the client as an alert on
// its first read.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	deadline := time.Now().Add(10 * time.Second)
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)

	srv := tls.Server(sc, server)
	done := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte{1})
		}
		done <- err
	}()
	cli := tls.Client(cc, client)
	cerr := cli.Handshake()
	if cerr == nil {
		_, cerr = io.ReadFull(cli, make([]byte, 1))
	}
	if cerr != nil {
		// Unblock a server still waiting for the client.
		cc.Close()
	}
	if serr := <-done; serr != nil {
		return tls.ConnectionState{}, serr
	}
	if cerr != nil {
		return tls.ConnectionState{}, cerr
	}
	return srv.ConnectionState(), nil
}

func TestServerTLSHandshake(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	servingCert, servingKey, err := ca.EnsureServingCert(dir, "apiserver", []string{"10.96.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	serverConfig, err := ca.ServerTLSConfig(servingCert, servingKey)
	if err != nil {
		t.Fatal(err)
	}
	adminCert, adminKey, err := ca.EnsureClientCert(dir, "admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := tls.LoadX509KeyPair(adminCert, adminKey)
	if err != nil {
		t.Fatal(err)
	}

	otherDir := t.TempDir()
	other := mustCA(t, otherDir)
	strangerCert, strangerKey, err := other.EnsureClientCert(otherDir, "stranger", "stranger", nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := tls.LoadX509KeyPair(strangerCert, strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	// A serving certificate is signed by the right CA but is not for clients.
	serving, err := tls.LoadX509KeyPair(servingCert, servingKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		serverName string
		roots      *CA
		certs      []tls.Certificate
		wantErr    bool
		wantUser   string // CN the server sees; "" for none
	}{
		{name: "admin client cert", serverName: "kubernetes.default.svc", roots: ca, certs: []tls.Certificate{admin}, wantUser: "kubernetes-admin"},
		{name: "no client cert", serverName: "10.96.0.1", roots: ca},
		{name: "client cert from another CA", serverName: "localhost", roots: ca, certs: []tls.Certificate{stranger}, wantErr: true},
		{name: "serving cert used as client cert", serverName: "localhost", roots: ca, certs: []tls.Certificate{serving}, wantErr: true},
		{name: "name not in serving cert", serverName: "example.com", roots: ca, wantErr: true},
		{name: "client trusts another CA", serverName: "localhost", roots: other, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, err := handshake(t, serverConfig, &tls.Config{
				ServerName:   tt.serverName,
				RootCAs:      tt.roots.Pool(),
				Certificates: tt.certs,
				NextProtos:   []string{"h2", "http/1.1"},
			})
			if tt.wantErr {
				if err == nil {
					t.Fatal("handshake succeeded, want failure")
				}
				t.Logf("handshake failed as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if state.NegotiatedProtocol != "h2" {
				t.Errorf("negotiated %q, want h2", state.NegotiatedProtocol)
			}
			var user string
			if len(state.PeerCertificates) > 0 {
				user = state.PeerCertificates[0].Subject.CommonName
			}
			if user != tt.wantUser {
				t.Errorf("server saw client %q, want %q", user, tt.wantUser)
			}
		})
	}
}

func TestServerTLSConfigMissingPair(t *testing.T) {
	ca := mustCA(t, t.TempDir())
	if _, err := ca.ServerTLSConfig("/nonexistent.crt", "/nonexistent.key"); err == nil {
		t.Error("ServerTLSConfig with missing files succeeded")
	}
}
