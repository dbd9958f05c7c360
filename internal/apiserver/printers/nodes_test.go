package printers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func testNode(name string, ready corev1.ConditionStatus, labels map[string]string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: objectMeta(name)}
	n.Namespace = ""
	n.Labels = labels
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: ready},
		}
	}
	return n
}

func TestNodeRows(t *testing.T) {
	cp := testNode("cp-1", corev1.ConditionTrue, map[string]string{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "cp-1"})
	cp.Status.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion: "v1.37.2", OSImage: "Debian GNU/Linux 13 (trixie)", KernelVersion: "6.12.0-1-amd64", ContainerRuntimeVersion: "containerd://2.1.0",
	}
	cp.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "cp-1"},
		{Type: corev1.NodeInternalIP, Address: "192.168.0.10"},
		{Type: corev1.NodeInternalIP, Address: "fd00::10"},
		{Type: corev1.NodeExternalIP, Address: "203.0.113.10"},
	}

	cordoned := testNode("w-1", corev1.ConditionTrue, nil)
	cordoned.Spec.Unschedulable = true
	lostCordoned := testNode("w-2", "", nil)
	lostCordoned.Spec.Unschedulable = true

	roles := testNode("w-3", corev1.ConditionTrue, map[string]string{
		"node-role.kubernetes.io/worker": "",
		"node-role.kubernetes.io/gpu":    "true",
		"node-role.kubernetes.io/":       "ignored",
		"kubernetes.io/role":             "infra",
	})
	legacyEmpty := testNode("w-4", corev1.ConditionTrue, map[string]string{"kubernetes.io/role": ""})

	runRowCases(t, nodesGR, []rowCase{
		{"ready control plane", cp,
			"cp-1 | Ready | control-plane | 10m | v1.37.2 | 192.168.0.10 | 203.0.113.10 | Debian GNU/Linux 13 (trixie) | 6.12.0-1-amd64 | containerd://2.1.0"},
		{"not ready", testNode("w-0", corev1.ConditionFalse, nil),
			"w-0 | NotReady | <none> | 10m |  | <none> | <none> | <unknown> | <unknown> | <unknown>"},
		{"ready unknown", testNode("w-0", corev1.ConditionUnknown, nil),
			"w-0 | NotReady | <none> | 10m |  | <none> | <none> | <unknown> | <unknown> | <unknown>"},
		{"no ready condition", testNode("w-0", "", nil),
			"w-0 | Unknown | <none> | 10m |  | <none> | <none> | <unknown> | <unknown> | <unknown>"},
		{"cordoned", cordoned,
			"w-1 | Ready,SchedulingDisabled | <none> | 10m |  | <none> | <none> | <unknown> | <unknown> | <unknown>"},
		{"cordoned without status", lostCordoned,
			"w-2 | Unknown,SchedulingDisabled | <none> | 10m |  | <none> | <none> | <unknown> | <unknown> | <unknown>"},
		{"several roles, sorted", roles,
			"w-3 | Ready | gpu,infra,worker | 10m |  | <none> | <none> | <unknown> | <unknown> | <unknown>"},
		{"empty legacy role", legacyEmpty,
			"w-4 | Ready | <none> | 10m |  | <none> | <none> | <unknown> | <unknown> | <unknown>"},
	})
}

func TestNamespaceRows(t *testing.T) {
	ns := func(name string, phase corev1.NamespacePhase) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: objectMeta(name), Status: corev1.NamespaceStatus{Phase: phase}}
		n.Namespace = ""
		return n
	}
	runRowCases(t, namespacesGR, []rowCase{
		{"active", ns("default", corev1.NamespaceActive), "default | Active | 10m"},
		{"terminating", ns("old", corev1.NamespaceTerminating), "old | Terminating | 10m"},
		{"unset phase is active", ns("new", ""), "new | Active | 10m"},
	})
}
