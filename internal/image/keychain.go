package image

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
)

// DockerConfigKeychain makes a keychain of pull secrets: each config is
// the data of a kubernetes.io/dockerconfigjson secret ({"auths":{…}}) or
// of a legacy kubernetes.io/dockercfg one (the map alone). A registry key
// is a host ("registry.example:5000"), optionally with a scheme and a path
// ("https://index.docker.io/v1/", "registry.example/team"); Docker Hub's
// names all mean Docker Hub. For an image, the key with the longest
// matching host and path wins, the earlier config among equals; without
// a match access is anonymous.
func DockerConfigKeychain(configs ...[]byte) (authn.Keychain, error) {
	var kc dockerKeychain
	for i, data := range configs {
		var withAuths struct {
			Auths map[string]authn.AuthConfig `json:"auths"`
		}
		if err := json.Unmarshal(data, &withAuths); err != nil {
			return nil, fmt.Errorf("pull secret %d: %w", i, err)
		}
		entries := withAuths.Auths
		if entries == nil {
			if err := json.Unmarshal(data, &entries); err != nil {
				return nil, fmt.Errorf("pull secret %d: neither dockerconfigjson nor dockercfg: %w", i, err)
			}
		}
		for _, key := range slices.Sorted(maps.Keys(entries)) {
			host, prefix := splitRegistryKey(key)
			kc = append(kc, dockerEntry{host: host, prefix: prefix, cfg: entries[key]})
		}
	}
	return kc, nil
}

type dockerEntry struct {
	host, prefix string
	cfg          authn.AuthConfig
}

type dockerKeychain []dockerEntry

// splitRegistryKey turns a config key into a host and a repository path
// prefix.
func splitRegistryKey(key string) (host, prefix string) {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	host, prefix, _ = strings.Cut(key, "/")
	host = canonicalRegistry(host)
	prefix = strings.Trim(prefix, "/")
	if prefix == "v1" || prefix == "v2" {
		prefix = "" // "https://index.docker.io/v1/" names the registry
	}
	return host, prefix
}

func canonicalRegistry(host string) string {
	switch strings.ToLower(host) {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHubAPI
	}
	return strings.ToLower(host)
}

// Resolve implements authn.Keychain.
func (kc dockerKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	host := canonicalRegistry(res.RegistryStr())
	repo := strings.TrimPrefix(res.String(), res.RegistryStr())
	repo = strings.Trim(repo, "/")
	best := -1
	for i, e := range kc {
		if e.host != host {
			continue
		}
		if e.prefix != "" && repo != e.prefix && !strings.HasPrefix(repo, e.prefix+"/") {
			continue
		}
		if best < 0 || len(e.prefix) > len(kc[best].prefix) {
			best = i
		}
	}
	if best < 0 {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(kc[best].cfg), nil
}

// SecretsKeychain is DockerConfigKeychain over a pod's imagePullSecrets:
// the .dockerconfigjson of kubernetes.io/dockerconfigjson secrets and the
// .dockercfg of kubernetes.io/dockercfg ones, in order; secrets of other
// types are ignored.
func SecretsKeychain(secrets []corev1.Secret) (authn.Keychain, error) {
	var configs [][]byte
	for _, s := range secrets {
		var data []byte
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			data = s.Data[corev1.DockerConfigJsonKey]
		case corev1.SecretTypeDockercfg:
			data = s.Data[corev1.DockerConfigKey]
		default:
			continue
		}
		if _, err := DockerConfigKeychain(data); err != nil {
			return nil, fmt.Errorf("pull secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		configs = append(configs, data)
	}
	return DockerConfigKeychain(configs...)
}
