package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// DefaultKubeconfigName is the cluster, user and context name used when
// KubeconfigOptions leaves them empty.
const DefaultKubeconfigName = "kite"

// KubeconfigOptions describe a single-cluster kubeconfig. Credentials are
// embedded as data, never as file paths, so the file stands alone.
type KubeconfigOptions struct {
	// Server is the API server URL, e.g. https://127.0.0.1:6443. Required.
	Server string
	// CAData is the PEM of the CA that signed the server's certificate.
	CAData []byte
	// ClientCertData and ClientKeyData are a PEM client pair; set both or
	// neither.
	ClientCertData []byte
	ClientKeyData  []byte
	// Token is a bearer token, e.g. a bootstrap token.
	Token string
	// ClusterName, UserName and ContextName default to
	// DefaultKubeconfigName.
	ClusterName string
	UserName    string
	ContextName string
	// Namespace is the context's default namespace; empty means "default".
	Namespace string
}

func (o KubeconfigOptions) withDefaults() KubeconfigOptions {
	for _, s := range []*string{&o.ClusterName, &o.UserName, &o.ContextName} {
		if *s == "" {
			*s = DefaultKubeconfigName
		}
	}
	return o
}

// Validate reports options that cannot make a usable kubeconfig.
func (o KubeconfigOptions) Validate() error {
	if o.Server == "" {
		return errors.New("pki: kubeconfig needs a server URL")
	}
	if (len(o.ClientCertData) == 0) != (len(o.ClientKeyData) == 0) {
		return errors.New("pki: kubeconfig needs both a client certificate and its key, or neither")
	}
	return nil
}

// Kubeconfig builds the kubeconfig described by opts, with its one context
// current.
func Kubeconfig(opts KubeconfigOptions) (*clientcmdapi.Config, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = opts.Server
	cluster.CertificateAuthorityData = opts.CAData
	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData = opts.ClientCertData
	user.ClientKeyData = opts.ClientKeyData
	user.Token = opts.Token
	kctx := clientcmdapi.NewContext()
	kctx.Cluster = opts.ClusterName
	kctx.AuthInfo = opts.UserName
	kctx.Namespace = opts.Namespace

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[opts.ClusterName] = cluster
	cfg.AuthInfos[opts.UserName] = user
	cfg.Contexts[opts.ContextName] = kctx
	cfg.CurrentContext = opts.ContextName
	return cfg, nil
}

// WriteKubeconfig writes the kubeconfig described by opts to path with mode
// 0600, creating parent directories (0700) and replacing any existing file.
func WriteKubeconfig(path string, opts KubeconfigOptions) error {
	cfg, err := Kubeconfig(opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	// clientcmd.WriteToFile keeps the mode of an existing file; tighten it
	// before the credentials go in.
	if err := os.Chmod(path, secretMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pki: %w", err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("pki: writing kubeconfig %s: %w", path, err)
	}
	return nil
}

// MergeKubeconfig copies every cluster, user and context of the kubeconfig
// at from into the kubeconfig at path (for example ~/.kube/config),
// replacing entries with the same names and keeping all others. path need
// not exist. With setCurrent, path's current context becomes from's (or
// from's only context if it names none).
//
// path is rewritten atomically with mode 0600; if it is a symlink, the file
// it points to is replaced and the link kept. Relative file references in
// from are made absolute so they still resolve from path's directory.
func MergeKubeconfig(path, from string, setCurrent bool) error {
	src, err := clientcmd.LoadFromFile(from)
	if err != nil {
		return fmt.Errorf("pki: loading kubeconfig %s: %w", from, err)
	}
	if err := clientcmd.ResolveLocalPaths(src); err != nil {
		return fmt.Errorf("pki: kubeconfig %s: %w", from, err)
	}

	target, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A missing file, or a dangling link: write at path itself.
		target, err = path, nil
	}
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	dst, err := clientcmd.LoadFromFile(target)
	if errors.Is(err, fs.ErrNotExist) {
		dst, err = clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return fmt.Errorf("pki: loading kubeconfig %s: %w", target, err)
	}

	if err := mergeInto(dst, src, setCurrent); err != nil {
		return fmt.Errorf("pki: merging %s into %s: %w", from, path, err)
	}
	data, err := clientcmd.Write(*dst)
	if err != nil {
		return fmt.Errorf("pki: encoding kubeconfig %s: %w", target, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), dirMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeFileAtomic(target, data, secretMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// mergeInto copies src's entries over dst's.
func mergeInto(dst, src *clientcmdapi.Config, setCurrent bool) error {
	for name, c := range src.Clusters {
		c.LocationOfOrigin = ""
		dst.Clusters[name] = c
	}
	for name, u := range src.AuthInfos {
		u.LocationOfOrigin = ""
		dst.AuthInfos[name] = u
	}
	for name, c := range src.Contexts {
		c.LocationOfOrigin = ""
		dst.Contexts[name] = c
	}
	if !setCurrent {
		return nil
	}
	current := src.CurrentContext
	if current == "" && len(src.Contexts) == 1 {
		for name := range src.Contexts {
			current = name
		}
	}
	if current == "" {
		return errors.New("source names no current context")
	}
	if _, ok := dst.Contexts[current]; !ok {
		return fmt.Errorf("source's current context %q is not defined", current)
	}
	dst.CurrentContext = current
	return nil
}
