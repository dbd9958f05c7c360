package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/version"
)

// maxPods is the pods a node accepts, as upstream's kubelet default.
const maxPods = 110

// nodeInfo is what the agent reports about its machine; read once.
type nodeInfo struct {
	kernel, osImage, runtime, machineID, bootID string
	cpu                                         int
	memory                                      int64 // bytes
}

func readNodeInfo() nodeInfo {
	ni := nodeInfo{cpu: runtime.NumCPU(), osImage: "Linux", runtime: "runc://unknown"}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		ni.kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/etc/os-release"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				ni.osImage = strings.Trim(v, `"`)
			}
		}
		f.Close()
	}
	if out, err := exec.Command("runc", "--version").Output(); err == nil {
		// "runc version 1.1.5+ds1\n..."
		if f := strings.Fields(strings.SplitN(string(out), "\n", 2)[0]); len(f) >= 3 {
			ni.runtime = "runc://" + f[2]
		}
	}
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		ni.machineID = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		ni.bootID = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int64
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
				ni.memory = kb * 1024
			}
		}
		f.Close()
	}
	return ni
}

// desiredNode is the Node the agent registers: its labels and status. The
// podCIDR is the node IPAM controller's to set.
func (a *Agent) desiredNode(networkReady bool) *corev1.Node {
	ni := a.info
	labels := map[string]string{
		corev1.LabelHostname: a.cfg.NodeName, corev1.LabelOSStable: runtime.GOOS, corev1.LabelArchStable: runtime.GOARCH,
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(ni.cpu), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(ni.memory, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity.DeepCopy(),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: a.cfg.NodeIP},
				{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(max(a.cfg.Port, 0))}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: ni.machineID, BootID: ni.bootID, KernelVersion: ni.kernel, OSImage: ni.osImage,
				ContainerRuntimeVersion: ni.runtime, KubeletVersion: "kite/" + version.Version, KubeProxyVersion: "",
				OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
			},
			Conditions: a.conditions(networkReady),
		},
	}
}

func (a *Agent) conditions(networkReady bool) []corev1.NodeCondition {
	ok := func(t corev1.NodeConditionType, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg}
	}
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kite agent is posting ready status"}
	if !networkReady {
		ready.Status, ready.Reason = corev1.ConditionFalse, "KubeletNotReady"
		ready.Message = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni config uninitialized (the node has no podCIDR yet)"
	}
	return []corev1.NodeCondition{
		ok(corev1.NodeMemoryPressure, "KubeletHasSufficientMemory", "kite agent has sufficient memory available"),
		ok(corev1.NodeDiskPressure, "KubeletHasNoDiskPressure", "kite agent has no disk pressure"),
		ok(corev1.NodePIDPressure, "KubeletHasSufficientPID", "kite agent has sufficient PID available"),
		ready,
	}
}

// syncNode registers the Node or brings its status up to date. It writes
// only when something changed or force is set (the periodic report),
// keeping transition times of conditions that did not change.
func (a *Agent) syncNode(ctx context.Context, networkReady, force bool) (*corev1.Node, error) {
	want := a.desiredNode(networkReady)
	now := metav1.Now()
	nodes := a.client.CoreV1().Nodes()
	cur, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		for i := range want.Status.Conditions {
			want.Status.Conditions[i].LastHeartbeatTime, want.Status.Conditions[i].LastTransitionTime = now, now
		}
		created, err := nodes.Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("register node %s: %w", a.cfg.NodeName, err)
		}
		// Create drops nothing of a Node's status, but post it through
		// /status as the contract says.
		created.Status = want.Status
		return nodes.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, err
	}
	node := cur.DeepCopy()
	changed := false
	for k, v := range want.Labels {
		if node.Labels[k] != v {
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			node.Labels[k], changed = v, true
		}
	}
	if changed {
		if node, err = nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	st := want.Status
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
		for _, old := range node.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	if !force && statusEqual(node.Status, st) {
		return node, nil
	}
	node.Status.Capacity, node.Status.Allocatable = st.Capacity, st.Allocatable
	node.Status.Addresses, node.Status.NodeInfo, node.Status.DaemonEndpoints = st.Addresses, st.NodeInfo, st.DaemonEndpoints
	node.Status.Conditions = st.Conditions
	return nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
}

// statusEqual compares what the agent owns, ignoring heartbeat times.
func statusEqual(cur, want corev1.NodeStatus) bool {
	if !equality.Semantic.DeepEqual(cur.Capacity, want.Capacity) || !equality.Semantic.DeepEqual(cur.Addresses, want.Addresses) ||
		cur.NodeInfo != want.NodeInfo || len(cur.Conditions) != len(want.Conditions) {
		return false
	}
	for i := range want.Conditions {
		w := want.Conditions[i]
		found := false
		for _, c := range cur.Conditions {
			if c.Type == w.Type && c.Status == w.Status && c.Reason == w.Reason && c.Message == w.Message {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// renewLease keeps the node's heartbeat Lease in kube-node-lease fresh.
func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: corev1.NamespaceNodeLease}}
		a.fillLease(l, now)
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	a.fillLease(l, now)
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

func (a *Agent) fillLease(l *coordinationv1.Lease, now metav1.MicroTime) {
	l.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(a.cfg.LeaseDuration / time.Second))
	l.Spec.RenewTime = &now
	if a.node != nil && len(l.OwnerReferences) == 0 {
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.node.Name, UID: a.node.UID}}
	}
}
