package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// mounts are a container's bind mounts: the pod's /etc/hosts,
// /etc/hostname and /etc/resolv.conf (read-only), its termination message
// file, and its volumeMounts. Volumes kite supports: emptyDir (a
// directory of the pod's, a tmpfs for medium Memory), hostPath, configMap, secret, downwardAPI and
// projected (their files written when the container starts; see
// projected.go for how they are kept current).
func (w *podWorker) mounts(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt int, ips []string) ([]runtime.Mount, error) {
	taken := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		taken[filepath.Clean(vm.MountPath)] = true
	}
	var out []runtime.Mount
	etc := filepath.Join(w.m.podDir(pod.UID), "etc")
	for _, f := range []string{fileHosts, fileHostname, fileResolv} {
		if dst := "/etc/" + f; !taken[dst] {
			out = append(out, runtime.Mount{Source: filepath.Join(etc, f), Destination: dst, ReadOnly: true})
		}
	}
	if p := c.TerminationMessagePath; p != "" && !taken[filepath.Clean(p)] {
		src := w.m.terminationFile(pod.UID, containerID(pod.UID, c.Name, attempt))
		if err := writeFileAtomic(src, nil, 0o666); err != nil {
			return nil, err
		}
		out = append(out, runtime.Mount{Source: src, Destination: p})
	}
	for _, vm := range c.VolumeMounts {
		src, err := w.volumeSource(ctx, pod, vm.Name, ips)
		if err != nil {
			return nil, err
		}
		if vm.SubPath != "" {
			if filepath.IsAbs(vm.SubPath) || strings.Contains(vm.SubPath, "..") {
				return nil, fmt.Errorf("volume mount %s: invalid subPath %q", vm.Name, vm.SubPath)
			}
			src = filepath.Join(src, vm.SubPath)
			if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, runtime.Mount{Source: src, Destination: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	return out, nil
}

// volumeSource prepares a volume and returns its directory (or file).
func (w *podWorker) volumeSource(ctx context.Context, pod *corev1.Pod, name string, ips []string) (string, error) {
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil {
		return "", fmt.Errorf("volume %q is not in the pod's volumes", name)
	}
	dir := filepath.Join(w.m.podDir(pod.UID), "volumes", name)
	switch src := vol.VolumeSource; {
	case src.EmptyDir != nil:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", err
		}
		if src.EmptyDir.Medium == corev1.StorageMediumMemory {
			return dir, w.memoryVolume(dir, src.EmptyDir.SizeLimit)
		}
		return dir, os.Chmod(dir, 0o777)
	case src.HostPath != nil:
		return hostPathVolume(src.HostPath)
	case src.ConfigMap != nil:
		cm, err := w.m.configMap(pod.Namespace, src.ConfigMap.Name)
		if err != nil {
			if ptr.Deref(src.ConfigMap.Optional, false) {
				return dir, os.MkdirAll(dir, 0o755)
			}
			return "", fmt.Errorf("configmap %q: %w", src.ConfigMap.Name, err)
		}
		data := map[string][]byte{}
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			data[k] = v
		}
		return dir, writeKeys(dir, data, src.ConfigMap.Items, ptr.Deref(src.ConfigMap.DefaultMode, 0o644))
	case src.Secret != nil:
		s, err := w.m.secret(pod.Namespace, src.Secret.SecretName)
		if err != nil {
			if ptr.Deref(src.Secret.Optional, false) {
				return dir, os.MkdirAll(dir, 0o755)
			}
			return "", fmt.Errorf("secret %q: %w", src.Secret.SecretName, err)
		}
		return dir, writeKeys(dir, s.Data, src.Secret.Items, ptr.Deref(src.Secret.DefaultMode, 0o644))
	case src.DownwardAPI != nil:
		files, err := downwardFiles(w.m, pod, src.DownwardAPI.Items, ptr.Deref(src.DownwardAPI.DefaultMode, corev1.DownwardAPIVolumeSourceDefaultMode), ips)
		if err != nil {
			return "", fmt.Errorf("volume %q: %w", name, err)
		}
		return dir, writeFiles(dir, files)
	case src.Projected != nil:
		if err := w.projectedVolume(ctx, pod, dir, src.Projected, ips); err != nil {
			return "", fmt.Errorf("volume %q: %w", name, err)
		}
		return dir, nil
	}
	return "", fmt.Errorf("volume %q: kite supports emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes", name)
}

// memoryVolume makes an emptyDir of medium Memory a tmpfs (once: it stays
// mounted across container restarts and agent restarts, until the pod's
// cleanup unmounts it). Its size is sizeLimit, else the node's
// allocatable memory, as upstream sizes memory-backed volumes.
func (w *podWorker) memoryVolume(dir string, sizeLimit *resource.Quantity) error {
	if mounted, err := runtime.IsMountPoint(dir); err != nil || mounted {
		return err
	}
	size := w.m.allocatable.Memory().Value()
	if sizeLimit != nil && sizeLimit.Value() > 0 {
		size = sizeLimit.Value()
	}
	opts := "mode=0777"
	if size > 0 {
		opts += fmt.Sprintf(",size=%d", size)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s (%s): %w", dir, opts, err)
	}
	return nil
}

// unmountVolumes unmounts whatever is mounted under a pod's directory
// (its memory-backed volumes), so that removing it leaks no mount.
func unmountVolumes(podDir string) error {
	mps, err := runtime.MountPointsUnder(podDir)
	if err != nil {
		return err
	}
	for _, mp := range mps {
		if err := unix.Unmount(mp, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", mp, err)
			}
		}
	}
	return nil
}

func hostPathVolume(hp *corev1.HostPathVolumeSource) (string, error) {
	p := hp.Path
	fi, err := os.Stat(p)
	switch ptr.Deref(hp.Type, corev1.HostPathUnset) {
	case corev1.HostPathDirectoryOrCreate:
		if errors.Is(err, fs.ErrNotExist) {
			return p, os.MkdirAll(p, 0o755)
		}
	case corev1.HostPathFileOrCreate:
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
			return p, os.WriteFile(p, nil, 0o644)
		}
	case corev1.HostPathDirectory:
		if err != nil || !fi.IsDir() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a directory", p)
		}
	case corev1.HostPathFile:
		if err != nil || !fi.Mode().IsRegular() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a file", p)
		}
	case corev1.HostPathUnset:
		return p, nil
	default:
		if err != nil {
			return "", fmt.Errorf("hostPath %s: %w", p, err)
		}
	}
	return p, nil
}

// writeKeys writes a ConfigMap's or Secret's keys (or the listed items)
// as files of dir.
func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath, mode int32) error {
	files, err := keyFiles(data, items, mode, false)
	if err != nil {
		return err
	}
	return writeFiles(dir, files)
}

// volumeFile is one file of a volume: its content and permission bits.
type volumeFile struct {
	data []byte
	mode int32
}

// keyFiles are a ConfigMap's or Secret's keys (or the listed items) as
// files with mode unless an item says otherwise. A listed key that does
// not exist is an error, unless the source is optional.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, mode int32, optional bool) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = volumeFile{v, mode}
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("key %q does not exist", it.Key)
		}
		files[it.Path] = volumeFile{v, ptr.Deref(it.Mode, mode)}
	}
	return files, nil
}

// writeFiles writes files into dir, each replaced atomically (a reader
// sees the old or the new content, never a partial file) and only when
// its content or mode changed, so a periodic refresh does not churn.
func writeFiles(dir string, files map[string]volumeFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for p, f := range files {
		if filepath.IsAbs(p) || strings.Contains(p, "..") {
			return fmt.Errorf("invalid path %q", p)
		}
		path := filepath.Join(dir, p)
		mode := fs.FileMode(f.mode) & fs.ModePerm
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.data) {
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == mode {
				continue
			}
		}
		if err := writeFileAtomic(path, f.data, mode); err != nil {
			return err
		}
		// WriteFile's mode passes through the umask; the volume's
		// mode is what the pod asked for.
		if err := os.Chmod(path, mode); err != nil {
			return err
		}
	}
	return nil
}

// terminationFile is where an instance's termination message is written
// (bind-mounted at its terminationMessagePath).
func (m *podManager) terminationFile(uid types.UID, id string) string {
	return filepath.Join(m.podDir(uid), "termination", id)
}

// Limits of a termination message, as kubelet's.
const (
	maxTerminationMessage = 4096
	maxFallbackLogBytes   = 2048
	maxFallbackLogLines   = 80
)

// terminationMessage is an exited instance's message: its termination
// file, or with FallbackToLogsOnError after a failure, the end of its log.
func (m *podManager) terminationMessage(pod *corev1.Pod, c *corev1.Container, inst *runtime.ContainerStatus) string {
	if inst.Labels[labelStartError] != "" {
		return ""
	}
	data, _ := os.ReadFile(m.terminationFile(pod.UID, inst.ID))
	if len(data) > maxTerminationMessage {
		data = data[:maxTerminationMessage]
	}
	if len(data) > 0 || c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError || inst.ExitCode == 0 {
		return string(data)
	}
	return logTail(inst.LogPath)
}

// logTail is the last lines of a CRI log file's output.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	var cur bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		e, err := runtime.ParseLogLine(sc.Bytes())
		if err != nil {
			continue
		}
		cur.Write(e.Content)
		if !e.Partial {
			lines = append(lines, cur.String())
			cur.Reset()
			if len(lines) > maxFallbackLogLines {
				lines = lines[1:]
			}
		}
	}
	out := strings.Join(lines, "\n")
	if len(out) > maxFallbackLogBytes {
		out = out[len(out)-maxFallbackLogBytes:]
	}
	return out
}

func osHostname() (string, error) { return os.Hostname() }
