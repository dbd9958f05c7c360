package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// adminKubeconfig issues an admin pair and returns options for it.
func adminKubeconfig(t *testing.T) KubeconfigOptions {
	t.Helper()
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certFile, keyFile, err := ca.EnsureClientCert(dir, "admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	return KubeconfigOptions{
		Server:         "https://127.0.0.1:6443",
		CAData:         ca.CertPEM,
		ClientCertData: mustRead(t, certFile),
		ClientKeyData:  mustRead(t, keyFile),
	}
}

func TestWriteKubeconfigClientCert(t *testing.T) {
	opts := adminKubeconfig(t)
	path := filepath.Join(t.TempDir(), "a", "b", "admin.kubeconfig")
	if err := WriteKubeconfig(path, opts); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)

	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw.CurrentContext != "kite" || raw.Clusters["kite"] == nil || raw.AuthInfos["kite"] == nil {
		t.Errorf("names not defaulted to kite: %+v", raw)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*raw, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != opts.Server {
		t.Errorf("Host = %q, want %q", rc.Host, opts.Server)
	}
	if !bytes.Equal(rc.TLSClientConfig.CAData, opts.CAData) ||
		!bytes.Equal(rc.TLSClientConfig.CertData, opts.ClientCertData) ||
		!bytes.Equal(rc.TLSClientConfig.KeyData, opts.ClientKeyData) {
		t.Error("rest.Config TLS data differs from what was written")
	}
	if rc.TLSClientConfig.CAFile != "" || rc.TLSClientConfig.CertFile != "" || rc.TLSClientConfig.KeyFile != "" {
		t.Error("kubeconfig refers to files instead of embedding data")
	}
}

func TestWriteKubeconfigToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bootstrap.kubeconfig")
	// A pre-existing, world-readable file must end up 0600.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := KubeconfigOptions{
		Server:      "https://10.0.0.1:6443",
		CAData:      adminKubeconfig(t).CAData,
		Token:       "abcdef.0123456789abcdef",
		ClusterName: "c", UserName: "u", ContextName: "x", Namespace: "kube-system",
	}
	if err := WriteKubeconfig(path, opts); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
	rc, err := clientcmd.RESTConfigFromKubeConfig(mustRead(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != opts.Server || rc.BearerToken != opts.Token {
		t.Errorf("Host, token = %q, %q", rc.Host, rc.BearerToken)
	}
	raw, _ := clientcmd.LoadFromFile(path)
	if raw.CurrentContext != "x" || raw.Contexts["x"].Cluster != "c" || raw.Contexts["x"].AuthInfo != "u" || raw.Contexts["x"].Namespace != "kube-system" {
		t.Errorf("context = %q %+v", raw.CurrentContext, raw.Contexts["x"])
	}
}

func TestKubeconfigValidate(t *testing.T) {
	tests := map[string]KubeconfigOptions{
		"no server":   {Token: "t"},
		"cert no key": {Server: "https://x", ClientCertData: []byte("c")},
		"key no cert": {Server: "https://x", ClientKeyData: []byte("k")},
	}
	for name, opts := range tests {
		if err := WriteKubeconfig(filepath.Join(t.TempDir(), "k"), opts); err == nil {
			t.Errorf("%s: WriteKubeconfig succeeded", name)
		}
	}
}

// userKubeconfig is an existing ~/.kube/config with another cluster and a
// stale "kite" entry.
func userKubeconfig(t *testing.T, path string) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod:6443", CertificateAuthority: "prod-ca.crt"}
	cfg.AuthInfos["prod-admin"] = &clientcmdapi.AuthInfo{Token: "prod-token"}
	cfg.Contexts["prod"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "prod-admin"}
	cfg.Clusters["kite"] = &clientcmdapi.Cluster{Server: "https://stale:6443"}
	cfg.CurrentContext = "prod"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMergeKubeconfig(t *testing.T) {
	tmp := t.TempDir()
	from := filepath.Join(tmp, "state", "admin.kubeconfig")
	if err := WriteKubeconfig(from, adminKubeconfig(t)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		existing    bool
		setCurrent  bool
		wantCurrent string
	}{
		{"into existing, keep current", true, false, "prod"},
		{"into existing, set current", true, true, "kite"},
		{"into missing file", false, true, "kite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ".kube", "config")
			if tt.existing {
				os.MkdirAll(filepath.Dir(path), 0o755)
				userKubeconfig(t, path)
			}
			if err := MergeKubeconfig(path, from, tt.setCurrent); err != nil {
				t.Fatal(err)
			}
			assertMode(t, path, 0o600)
			got, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got.CurrentContext != tt.wantCurrent {
				t.Errorf("current context = %q, want %q", got.CurrentContext, tt.wantCurrent)
			}
			if got.Clusters["kite"].Server != "https://127.0.0.1:6443" {
				t.Errorf("kite cluster not replaced: %+v", got.Clusters["kite"])
			}
			if got.AuthInfos["kite"] == nil || len(got.AuthInfos["kite"].ClientKeyData) == 0 {
				t.Error("kite user missing its embedded key")
			}
			if tt.existing {
				if c := got.Clusters["prod"]; c == nil || c.Server != "https://prod:6443" || c.CertificateAuthority != "prod-ca.crt" {
					t.Errorf("prod cluster changed: %+v", c)
				}
				if u := got.AuthInfos["prod-admin"]; u == nil || u.Token != "prod-token" {
					t.Errorf("prod user changed: %+v", u)
				}
				if got.Contexts["prod"] == nil {
					t.Error("prod context dropped")
				}
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".config.tmp-*"))
			if len(leftovers) != 0 {
				t.Errorf("temporary files left behind: %v", leftovers)
			}
		})
	}
}

func TestMergeKubeconfigFollowsSymlink(t *testing.T) {
	tmp := t.TempDir()
	from := filepath.Join(tmp, "admin.kubeconfig")
	if err := WriteKubeconfig(from, adminKubeconfig(t)); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(tmp, "real-config")
	userKubeconfig(t, real)
	link := filepath.Join(tmp, "config")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := MergeKubeconfig(link, from, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link replaced by a file (%v)", err)
	}
	got, err := clientcmd.LoadFromFile(real)
	if err != nil {
		t.Fatal(err)
	}
	if got.Clusters["kite"] == nil || got.Clusters["prod"] == nil {
		t.Errorf("link target not merged: clusters %v", got.Clusters)
	}
}

func TestMergeKubeconfigErrors(t *testing.T) {
	tmp := t.TempDir()
	good := filepath.Join(tmp, "good")
	if err := WriteKubeconfig(good, adminKubeconfig(t)); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(tmp, "corrupt")
	writeTestFile(t, corrupt, "{not: [yaml")

	if err := MergeKubeconfig(filepath.Join(tmp, "dst"), filepath.Join(tmp, "missing"), false); err == nil {
		t.Error("merging from a missing file succeeded")
	}
	before := mustRead(t, corrupt)
	if err := MergeKubeconfig(corrupt, good, true); err == nil {
		t.Error("merging into a corrupt file succeeded")
	}
	if !bytes.Equal(before, mustRead(t, corrupt)) {
		t.Error("corrupt destination was overwritten")
	}
}
