package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
)

// The user's kubeconfig gets one cluster, user and context, all named
// cl.Context, made current by `kite up` (pki.MergeKubeconfig) and removed
// by `kite down` — only if they still point at this cluster's API server,
// so a context the user has since repointed is left alone.

// removeContext deletes the cluster's context, cluster and user from the
// kubeconfig at path; a current-context naming it is cleared. A file left
// empty is removed if removeEmpty. A missing file is fine.
func removeContext(path, name, server string, removeEmpty bool) (bool, error) {
	target, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	cfg, err := clientcmd.LoadFromFile(target)
	if err != nil {
		return false, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	c, ok := cfg.Clusters[name]
	if !ok || c.Server != server {
		return false, nil
	}
	delete(cfg.Clusters, name)
	delete(cfg.AuthInfos, name)
	delete(cfg.Contexts, name)
	if cfg.CurrentContext == name {
		cfg.CurrentContext = ""
	}
	if removeEmpty && len(cfg.Clusters) == 0 && len(cfg.AuthInfos) == 0 && len(cfg.Contexts) == 0 {
		return true, os.Remove(target)
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return false, err
	}
	return true, writeFileAtomic(target, data, 0o600)
}
