package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Projected and downwardAPI volumes: files computed from the pod, its
// ConfigMaps and Secrets, and service account tokens fetched through the
// TokenRequest API. They are written when a container that mounts them
// starts, and kept current by refreshVolumes on every sync.

// tokenRefreshFraction: a token is replaced once this part of its
// lifetime has passed, as kubelet does, so a client re-reading the file
// never holds an expired token.
const tokenRefreshFraction = 0.8

// projectedVolume writes a projected volume's files into dir.
func (w *podWorker) projectedVolume(ctx context.Context, pod *corev1.Pod, dir string, src *corev1.ProjectedVolumeSource, ips []string) error {
	mode := ptr.Deref(src.DefaultMode, corev1.ProjectedVolumeSourceDefaultMode)
	files := map[string]volumeFile{}
	for i, s := range src.Sources {
		part, err := w.projection(ctx, pod, dir, s, mode, ips)
		if err != nil {
			return fmt.Errorf("source %d: %w", i, err)
		}
		maps.Copy(files, part)
	}
	return writeFiles(dir, files)
}

// projection computes the files of one projected source.
func (w *podWorker) projection(ctx context.Context, pod *corev1.Pod, dir string, s corev1.VolumeProjection, mode int32, ips []string) (map[string]volumeFile, error) {
	switch {
	case s.ConfigMap != nil:
		optional := ptr.Deref(s.ConfigMap.Optional, false)
		cm, err := w.m.configMap(pod.Namespace, s.ConfigMap.Name)
		if err != nil {
			if optional {
				return nil, nil
			}
			return nil, fmt.Errorf("configmap %q: %w", s.ConfigMap.Name, err)
		}
		return keyFiles(configMapData(cm), s.ConfigMap.Items, mode, optional)
	case s.Secret != nil:
		optional := ptr.Deref(s.Secret.Optional, false)
		sec, err := w.m.secret(pod.Namespace, s.Secret.Name)
		if err != nil {
			if optional {
				return nil, nil
			}
			return nil, fmt.Errorf("secret %q: %w", s.Secret.Name, err)
		}
		return keyFiles(sec.Data, s.Secret.Items, mode, optional)
	case s.DownwardAPI != nil:
		return downwardFiles(w.m, pod, s.DownwardAPI.Items, mode, ips)
	case s.ServiceAccountToken != nil:
		tok, err := w.serviceAccountToken(ctx, pod, filepath.Join(dir, s.ServiceAccountToken.Path), s.ServiceAccountToken)
		if err != nil {
			return nil, err
		}
		return map[string]volumeFile{s.ServiceAccountToken.Path: {[]byte(tok), mode}}, nil
	}
	return nil, errors.New("kite supports configMap, secret, downwardAPI and serviceAccountToken projections")
}

func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	maps.Copy(data, cm.BinaryData)
	return data
}

// serviceAccountToken is the token for a projection: the one already in
// file while it is fresh, else a new one for the pod's service account,
// bound to the pod.
func (w *podWorker) serviceAccountToken(ctx context.Context, pod *corev1.Pod, file string, p *corev1.ServiceAccountTokenProjection) (string, error) {
	if old, err := os.ReadFile(file); err == nil {
		if due, ok := tokenRefreshAt(string(old)); ok && w.m.now().Before(due) {
			return string(old), nil
		}
	}
	sa := pod.Spec.ServiceAccountName
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: p.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if p.Audience != "" {
		tr.Spec.Audiences = []string{p.Audience}
	}
	out, err := w.m.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of service account %s/%s: %w", pod.Namespace, sa, err)
	}
	return out.Status.Token, nil
}

// tokenRefreshAt reads a JWT's iat and exp (without checking it: it is
// the one we fetched) and says when it is due for replacement.
func tokenRefreshAt(token string) (time.Time, bool) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		IssuedAt int64 `json:"iat"`
		Expiry   int64 `json:"exp"`
	}
	if err := json.Unmarshal(data, &c); err != nil || c.Expiry <= c.IssuedAt {
		return time.Time{}, false
	}
	life := float64(c.Expiry - c.IssuedAt)
	return time.Unix(c.IssuedAt, 0).Add(time.Duration(life * tokenRefreshFraction * float64(time.Second))), true
}

// downwardFiles are the files of downwardAPI items: pod fields (labels
// and annotations as key="value" lines) and container resources.
func downwardFiles(m *podManager, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, mode int32, ips []string) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			switch it.FieldRef.FieldPath {
			case "metadata.labels":
				v = formatMap(pod.Labels)
			case "metadata.annotations":
				v = formatMap(pod.Annotations)
			default:
				v, err = podFieldValue(envInput{Pod: pod, PodIPs: ips, HostIP: m.cfg.NodeIP}, it.FieldRef.FieldPath)
			}
		case it.ResourceFieldRef != nil:
			c := podContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("downwardAPI %s: no container %q", it.Path, it.ResourceFieldRef.ContainerName)
			}
			v, err = resourceFieldValue(c, it.ResourceFieldRef, m.allocatable)
		default:
			return nil, fmt.Errorf("downwardAPI %s: no fieldRef or resourceFieldRef", it.Path)
		}
		if err != nil {
			return nil, fmt.Errorf("downwardAPI %s: %w", it.Path, err)
		}
		files[it.Path] = volumeFile{[]byte(v), ptr.Deref(it.Mode, mode)}
	}
	return files, nil
}

// formatMap renders labels or annotations one per line, sorted, values
// quoted, as kubelet writes them.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	return b.String()
}

// refreshVolumes keeps the pod's set-up projected and downwardAPI
// volumes current: tokens past their refresh point are replaced (and the
// volume's other files re-read with them), downward API files follow the
// pod. It returns how soon the next token falls due.
func (w *podWorker) refreshVolumes(ctx context.Context, pod *corev1.Pod, ips []string) (time.Duration, error) {
	next := resyncPeriod
	var errs []error
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(w.m.podDir(pod.UID), "volumes", v.Name)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue // no container mounted it yet
		}
		switch {
		case v.DownwardAPI != nil:
			mode := ptr.Deref(v.DownwardAPI.DefaultMode, corev1.DownwardAPIVolumeSourceDefaultMode)
			files, err := downwardFiles(w.m, pod, v.DownwardAPI.Items, mode, ips)
			if err == nil {
				err = writeFiles(dir, files)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
			}
		case v.Projected != nil:
			due, ok := w.tokensDue(dir, v.Projected)
			if !ok {
				continue // no token: written once, as configMap volumes
			}
			if w.m.now().Before(due) {
				next = min(next, due.Sub(w.m.now()))
				continue
			}
			if err := w.projectedVolume(ctx, pod, dir, v.Projected, ips); err != nil {
				errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
				continue
			}
			if due, ok := w.tokensDue(dir, v.Projected); ok {
				next = min(next, max(due.Sub(w.m.now()), time.Second))
			}
		}
	}
	return next, errors.Join(errs...)
}

// tokensDue is when the first token of a projected volume falls due;
// false when the volume has no token, or one that cannot be read (which
// is due now).
func (w *podWorker) tokensDue(dir string, src *corev1.ProjectedVolumeSource) (time.Time, bool) {
	var first time.Time
	for _, s := range src.Sources {
		if s.ServiceAccountToken == nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, s.ServiceAccountToken.Path))
		if err != nil {
			return w.m.now(), true
		}
		due, ok := tokenRefreshAt(string(data))
		if !ok {
			return w.m.now(), true
		}
		if first.IsZero() || due.Before(first) {
			first = due
		}
	}
	return first, !first.IsZero()
}
