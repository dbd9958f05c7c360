package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"kite/internal/runtime"
)

// ensureSandbox makes the pod's sandbox exist and attached to the pod
// network, and returns the pod's IPs. It is idempotent across agent
// restarts: an adopted sandbox with a network record is not attached
// again (it is CHECKed once); one without a record may hold half an ADD
// from a crash, which a DEL clears before the ADD.
func (w *podWorker) ensureSandbox(ctx context.Context, pod *corev1.Pod) ([]string, error) {
	if w.sandbox == nil {
		w.sandbox, _ = w.m.listed(w.uid)
	}
	created := false
	if w.sandbox == nil {
		sb, err := w.createSandbox(ctx, pod)
		if err != nil {
			return nil, err
		}
		w.sandbox, created = &sb, true
	}
	if pod.Spec.HostNetwork {
		return []string{w.m.cfg.NodeIP}, nil
	}
	rec, err := w.m.readNetRecord(string(w.uid))
	if err != nil {
		return nil, err
	}
	if rec != nil && !rec.Released {
		if !w.checked {
			w.checked = true
			if err := w.m.net.Check(ctx, rec.Attachment); err != nil {
				klog.FromContext(ctx).Info("adopted pod's network does not check out", "err", err)
			}
		}
		return rec.IPs, nil
	}
	att := w.attachment(pod)
	if !created {
		if err := w.m.net.Del(ctx, att); err != nil {
			klog.FromContext(ctx).V(1).Info("clearing an earlier attachment", "err", err)
		}
	}
	ips, err := w.m.net.Add(ctx, att)
	if err != nil {
		// A chain may fail after its first plugin attached the pod.
		if derr := w.m.net.Del(ctx, att); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	w.checked = true
	if err := w.m.writeNetRecord(string(w.uid), &podNetRecord{Attachment: att, IPs: ips}); err != nil {
		return nil, fmt.Errorf("network record: %w", err)
	}
	return ips, nil
}

func (w *podWorker) createSandbox(ctx context.Context, pod *corev1.Pod) (runtime.Sandbox, error) {
	cfg := runtime.SandboxConfig{ID: sandboxID(pod.UID), Hostname: utsHostname(pod, w.m.cfg.ClusterDomain),
		HostNetwork: pod.Spec.HostNetwork, Labels: podLabels(pod)}
	sb, err := w.m.rt.CreateSandbox(ctx, cfg)
	if runtime.IsAlreadyExists(err) {
		// Made since the last listing, or half made by a crash.
		sbs, lerr := w.m.rt.ListSandboxes(ctx)
		if lerr != nil {
			return sb, lerr
		}
		for _, s := range sbs {
			if s.ID == cfg.ID {
				return s, nil
			}
		}
		if err := w.m.rt.RemoveSandbox(ctx, cfg.ID); err != nil {
			return sb, err
		}
		sb, err = w.m.rt.CreateSandbox(ctx, cfg)
	}
	return sb, err
}

// attachment is the pod's CNI attachment, with its hostPorts.
func (w *podWorker) attachment(pod *corev1.Pod) Attachment {
	att := Attachment{SandboxID: sandboxID(pod.UID), NetNS: w.sandbox.NetNSPath,
		PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: string(pod.UID)}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				proto := "tcp"
				switch p.Protocol {
				case corev1.ProtocolUDP:
					proto = "udp"
				case corev1.ProtocolSCTP:
					proto = "sctp"
				}
				att.PortMappings = append(att.PortMappings, PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
			}
		}
	}
	return att
}

// Files of a pod's /etc.
const (
	fileHosts    = "hosts"
	fileHostname = "hostname"
	fileResolv   = "resolv.conf"
)

// writePodFiles writes the pod's /etc/hosts and /etc/hostname (again if
// they changed) and its /etc/resolv.conf (once: the cluster's DNS as the
// pod first saw it, as with kubelet).
func (w *podWorker) writePodFiles(pod *corev1.Pod, ips []string) error {
	dir := filepath.Join(w.m.podDir(pod.UID), "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hostname, domain := podHostname(pod, w.m.cfg.ClusterDomain)
	uts := utsHostname(pod, w.m.cfg.ClusterDomain)
	hosts := hostsFile(ips, hostname, domain, pod.Spec.HostAliases)
	if pod.Spec.HostNetwork {
		node, _ := os.ReadFile("/etc/hosts")
		hosts = hostNetworkHostsFile(node, pod.Spec.HostAliases)
		uts, _ = os.Hostname()
	}
	for name, data := range map[string][]byte{fileHosts: hosts, fileHostname: []byte(uts + "\n")} {
		path := filepath.Join(dir, name)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
			continue
		}
		if err := writeFileAtomic(path, data, 0o644); err != nil {
			return err
		}
	}
	path := filepath.Join(dir, fileResolv)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	rc := podResolvConf(pod, w.m.clusterDNS(), w.m.cfg.ClusterDomain, w.m.nodeResolvConf())
	return writeFileAtomic(path, rc.render(), 0o644)
}

// cleanup removes everything of the pod from the node: containers
// (stopped with grace first, in stopOrder), the CNI attachment, the
// sandbox, and the pod's files and logs. pod is nil when the object is
// gone; the runtime's labels then name it.
func (w *podWorker) cleanup(ctx context.Context, pod *corev1.Pod, grace time.Duration) error {
	w.stopProbers(nil)
	insts := w.instances(ctx)
	deadline := w.m.now().Add(grace)
	for _, group := range stopOrder(pod, insts) {
		if err := w.stopGroup(ctx, pod, group, max(deadline.Sub(w.m.now()), minKillGrace)); err != nil {
			return err
		}
	}
	for _, list := range insts {
		for _, c := range list {
			if err := w.m.rt.RemoveContainer(ctx, c.ID); err != nil {
				return err
			}
			delete(w.own, c.ID)
			delete(w.startErrors, c.ID)
		}
	}
	// The relister's listing may be stale here: list afresh.
	sbs, err := w.m.rt.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	var sb *runtime.Sandbox
	for i := range sbs {
		if sbs[i].ID == sandboxID(w.uid) {
			sb = &sbs[i]
		}
	}
	rec, err := w.m.readNetRecord(string(w.uid))
	if err != nil {
		return err
	}
	switch {
	case rec != nil && !rec.Released:
		if err := w.m.net.Del(ctx, rec.Attachment); err != nil {
			return err
		}
	case rec == nil && sb != nil && !sb.HostNetwork:
		// An ADD may have happened without its record.
		att := Attachment{SandboxID: sb.ID, NetNS: sb.NetNSPath, PodNamespace: sb.Labels[labelPodNamespace],
			PodName: sb.Labels[labelPodName], PodUID: sb.Labels[labelPodUID]}
		if err := w.m.net.Del(ctx, att); err != nil {
			return err
		}
	}
	if err := w.m.rt.RemoveSandbox(ctx, sandboxID(w.uid)); err != nil {
		return err
	}
	w.sandbox = nil
	if err := unmountVolumes(w.m.podDir(w.uid)); err != nil {
		return err
	}
	if err := os.RemoveAll(w.m.podDir(w.uid)); err != nil {
		return err
	}
	logs, _ := filepath.Glob(filepath.Join(w.m.cfg.StateDir, "logs", "*_"+string(w.uid)))
	for _, d := range logs {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// stopping is a running instance to stop, with its spec when the pod
// still names it (for its preStop hook).
type stopping struct {
	spec *corev1.Container
	inst runtime.ContainerStatus
}

// stopOrder groups the pod's running instances in the order they are
// stopped, as upstream does: the regular containers together, then the
// sidecars one by one, last first. Without the pod (gone from the API),
// instances of init containers (which can only be sidecars when still
// running) come last, together.
func stopOrder(pod *corev1.Pod, insts map[string][]runtime.ContainerStatus) [][]stopping {
	var main, sidecars []stopping
	for name, list := range insts {
		for _, inst := range list {
			if inst.State != runtime.StateRunning && inst.State != runtime.StateCreated {
				continue
			}
			s := stopping{inst: inst}
			if pod != nil {
				s.spec = podContainer(pod, name)
			}
			if inst.Labels[labelInit] == "true" {
				sidecars = append(sidecars, s)
			} else {
				main = append(main, s)
			}
		}
	}
	groups := [][]stopping{main}
	if pod == nil {
		return append(groups, sidecars)
	}
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		var g []stopping
		for _, s := range sidecars {
			if s.inst.Labels[labelContainer] == pod.Spec.InitContainers[i].Name {
				g = append(g, s)
			}
		}
		groups = append(groups, g)
	}
	return groups
}

// stopGroup stops instances in parallel, each with grace.
func (w *podWorker) stopGroup(ctx context.Context, pod *corev1.Pod, group []stopping, grace time.Duration) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(group))
	for _, s := range group {
		w.m.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", s.inst.Labels[labelContainer])
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.stopInstance(ctx, pod, s.spec, s.inst, grace); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
