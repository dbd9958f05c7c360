package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidatePod(t *testing.T) {
	tests := []struct {
		name string
		edit func(*corev1.Pod)
		want []string
	}{
		{"valid", func(*corev1.Pod) {}, nil},
		{"bad name", func(p *corev1.Pod) { p.Name = "Web" }, []string{"Invalid metadata.name"}},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, []string{"Required spec.containers"}},
		{"container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "App_1" }, []string{"Invalid spec.containers[0].name"}},
		{"no container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }, []string{"Required spec.containers[0].name"}},
		{"duplicate container", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
		}, []string{"Duplicate spec.containers[1].name"}},
		{"init container clashes with container", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{p.Spec.Containers[0]}
		}, []string{"Duplicate spec.initContainers[0].name"}},
		{"no image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []string{"Required spec.containers[0].image"}},
		{"image whitespace", func(p *corev1.Pod) { p.Spec.Containers[0].Image = " nginx" }, []string{"Invalid spec.containers[0].image"}},
		{"pull policy", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, []string{"NotSupported spec.containers[0].imagePullPolicy"}},
		{"termination message policy", func(p *corev1.Pod) { p.Spec.Containers[0].TerminationMessagePolicy = "" }, []string{"Required spec.containers[0].terminationMessagePolicy"}},
		{"restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []string{"NotSupported spec.restartPolicy"}},
		{"dns policy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "" }, []string{"Required spec.dnsPolicy"}},
		{"dns none needs config", func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }, []string{"Required spec.dnsConfig"}},
		{"dns config", func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "x"}, Searches: []string{"svc.cluster.local.", "_srv.example", "a..b"}}
		}, []string{"Invalid spec.dnsConfig.nameservers[1]", "Invalid spec.dnsConfig.searches[2]"}},
		{"no grace period", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = nil }, []string{"Required spec.terminationGracePeriodSeconds"}},
		{"active deadline", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(0)) }, []string{"Invalid spec.activeDeadlineSeconds"}},
		{"node and service account names", func(p *corev1.Pod) {
			p.Spec.NodeName, p.Spec.ServiceAccountName, p.Spec.Hostname = "Node_1", "a/b", "a.b"
		}, []string{"Invalid spec.nodeName", "Invalid spec.serviceAccountName", "Invalid spec.hostname"}},
		{"node selector", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux", "bad key!": "x"}
		}, []string{"Invalid spec.nodeSelector"}},
		{"ephemeral containers on create", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox", ImagePullPolicy: "IfNotPresent", TerminationMessagePolicy: "File"}}}
		}, []string{"Forbidden spec.ephemeralContainers"}},
		{"node name with scheduling gates", func(p *corev1.Pod) {
			p.Spec.NodeName = "n1"
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
		}, []string{"Forbidden spec.nodeName"}},
		{"mirror pod needs a node", func(p *corev1.Pod) { p.Annotations = map[string]string{"kubernetes.io/config.mirror": "x"} },
			[]string{"Invalid metadata.annotations[kubernetes.io/config.mirror]"}},
		{"deletion cost", func(p *corev1.Pod) {
			p.Annotations = map[string]string{"controller.kubernetes.io/pod-deletion-cost": "lots"}
		},
			[]string{"Invalid metadata.annotations[controller.kubernetes.io/pod-deletion-cost]"}},
		{"host network ports", func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: "TCP"}}
		}, []string{"Invalid spec.containers[0].ports[0].hostPort"}},
		{"host port conflict", func(p *corev1.Pod) {
			second := p.Spec.Containers[0]
			second.Name = "sidecar"
			p.Spec.Containers = append(p.Spec.Containers, second)
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80, Protocol: "TCP"}}
			p.Spec.Containers[1].Ports = []corev1.ContainerPort{{ContainerPort: 81, HostPort: 80, Protocol: "TCP"}}
		}, []string{"Duplicate spec.containers[1].ports[0].hostPort"}},
		{"tolerations", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{
				{Operator: corev1.TolerationOpExists},
				{Key: "k", Operator: "Maybe"},
				{Key: "k", Value: "v", Effect: "NoExecute", TolerationSeconds: ptrTo(int64(5))},
				{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"},
				{Operator: corev1.TolerationOpEqual, Effect: "Sometimes"},
				{Key: "k", Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptrTo(int64(5))},
			}
		}, []string{
			"NotSupported spec.tolerations[1].operator",
			"Invalid spec.tolerations[3].operator",
			"Invalid spec.tolerations[4].operator", "NotSupported spec.tolerations[4].effect",
			"Invalid spec.tolerations[5].effect",
		}},
		{"affinity", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{
				NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
						MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn}},
						MatchFields:      []corev1.NodeSelectorRequirement{{Key: "spec.nodeName", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}},
					}}},
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 0}},
				},
				PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{}}},
			}
		}, []string{
			"Required spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values",
			"Invalid spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key",
			"Invalid spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
			"Required spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
			// An empty label name fails two rules, as upstream.
			"Invalid spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
			"Invalid spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
		}},
		{"topology spread", func(p *corev1.Pod) {
			c := corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule}
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{c, c, {MaxSkew: 0, WhenUnsatisfiable: "Never"}}
		}, []string{
			"Duplicate spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}",
			"Invalid spec.topologySpreadConstraints[2].maxSkew",
			"Required spec.topologySpreadConstraints[2].topologyKey",
			"NotSupported spec.topologySpreadConstraints[2].whenUnsatisfiable",
		}},
		{"security context", func(p *corev1.Pod) {
			p.Spec.SecurityContext.RunAsUser = ptrTo(int64(-1))
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "net.core.somaxconn"}, {Name: "Bad Name"}, {Name: "net.core.somaxconn"}}
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptrTo(false), Privileged: ptrTo(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost},
			}
		}, []string{
			"Invalid spec.securityContext.runAsUser",
			"Invalid spec.securityContext.sysctls[1].name",
			"Duplicate spec.securityContext.sysctls[2].name",
			"Invalid spec.containers[0].securityContext",
			"Required spec.containers[0].securityContext.seccompProfile.localhostProfile",
		}},
		{"host users", func(p *corev1.Pod) { p.Spec.HostUsers = ptrTo(false); p.Spec.HostPID = true },
			[]string{"Forbidden spec.HostPID"}},
		{"os", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: "plan9"} }, []string{"NotSupported spec.os"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := validPod()
			tt.edit(pod)
			expectErrors(t, ValidatePod(pod), tt.want...)
		})
	}
}

func TestValidateContainer(t *testing.T) {
	tests := []struct {
		name string
		edit func(*corev1.Container)
		want []string
	}{
		{"ports", func(c *corev1.Container) {
			c.Ports = []corev1.ContainerPort{
				{Name: "http", ContainerPort: 80, Protocol: "TCP"},
				{Name: "http", ContainerPort: 81, Protocol: "TCP"},
				{Name: "Not_IANA", ContainerPort: 0, Protocol: "TCP"},
				{ContainerPort: 70000, HostPort: -1, Protocol: "ICMP"},
				{ContainerPort: 53},
			}
		}, []string{
			"Duplicate spec.containers[0].ports[1].name",
			"Invalid spec.containers[0].ports[2].name", "Required spec.containers[0].ports[2].containerPort",
			"Invalid spec.containers[0].ports[3].containerPort", "Invalid spec.containers[0].ports[3].hostPort",
			"NotSupported spec.containers[0].ports[3].protocol",
			"Required spec.containers[0].ports[4].protocol",
		}},
		{"env", func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{
				{Name: "OK", Value: "1"},
				{Name: ""},
				{Name: "A=B"},
				{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.nodeName"}}},
				{Name: "PHASE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.phase"}}},
				{Name: "BOGUS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.bogus"}}},
				{Name: "LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels['app']"}}},
				{Name: "EMPTY", ValueFrom: &corev1.EnvVarSource{}},
				{Name: "BOTH", Value: "x", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}},
				{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.gpu"}}},
				{Name: "CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "a/b"}}},
			}
		}, []string{
			"Required spec.containers[0].env[1].name",
			"Invalid spec.containers[0].env[2].name",
			"NotSupported spec.containers[0].env[4].valueFrom.fieldRef.fieldPath",
			"Invalid spec.containers[0].env[5].valueFrom.fieldRef.fieldPath",
			"Invalid spec.containers[0].env[7].valueFrom",
			"Invalid spec.containers[0].env[8].valueFrom",
			"NotSupported spec.containers[0].env[9].valueFrom.resourceFieldRef.resource",
			"Invalid spec.containers[0].env[10].valueFrom.configMapKeyRef.name",
			"Invalid spec.containers[0].env[10].valueFrom.configMapKeyRef.key",
		}},
		{"envFrom", func(c *corev1.Container) {
			c.EnvFrom = []corev1.EnvFromSource{
				{Prefix: "A_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
				{},
				{SecretRef: &corev1.SecretEnvSource{}},
			}
		}, []string{"Invalid spec.containers[0].envFrom", "Required spec.containers[0].envFrom[2].secretRef.name"}},
		{"resources", func(c *corev1.Container) {
			c.Resources = corev1.ResourceRequirements{
				Limits: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("500m"),
					"example.com/gpu":  resource.MustParse("1"),
					"bogus":            resource.MustParse("1"),
				},
				Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("1"),
					corev1.ResourceMemory: resource.MustParse("-1Mi"),
					"example.com/gpu":     resource.MustParse("2"),
					"example.com/fpga":    resource.MustParse("1"),
				},
			}
		}, []string{
			"Invalid spec.containers[0].resources.limits[bogus]", "Invalid spec.containers[0].resources.limits[bogus]",
			"Invalid spec.containers[0].resources.requests", // cpu request above its limit
			"Invalid spec.containers[0].resources.requests[memory]",
			"Invalid spec.containers[0].resources.requests", // gpu request differs from limit
			"Required spec.containers[0].resources.limits",  // fpga without a limit
		}},
		{"huge pages", func(c *corev1.Container) {
			c.Resources.Limits = corev1.ResourceList{"hugepages-2Mi": resource.MustParse("3Mi")}
		}, []string{"Invalid spec.containers[0].resources.limits[hugepages-2Mi]", "Forbidden spec.containers[0].resources"}},
		{"probes", func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{SuccessThreshold: 2, PeriodSeconds: -1}
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				HTTPGet:   &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(0), Scheme: "FTP"},
				TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")},
			}, TerminationGracePeriodSeconds: ptrTo(int64(5))}
			c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}, SuccessThreshold: 1}
		}, []string{
			"Required spec.containers[0].livenessProbe", "Invalid spec.containers[0].livenessProbe.periodSeconds",
			"Invalid spec.containers[0].livenessProbe.successThreshold",
			"Invalid spec.containers[0].readinessProbe.httpGet.port", "NotSupported spec.containers[0].readinessProbe.httpGet.scheme",
			"Forbidden spec.containers[0].readinessProbe.tcpSocket",
			"Invalid spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
			"Required spec.containers[0].startupProbe.exec.command",
		}},
		{"lifecycle sleep", func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 60}}}
		}, []string{"Invalid spec.containers[0].lifecycle.preStop.sleep"}},
		{"restartPolicy on a regular container", func(c *corev1.Container) { c.RestartPolicy = ptrTo(corev1.ContainerRestartPolicyAlways) },
			[]string{"Forbidden spec.containers[0].restartPolicy"}},
		{"volume mounts", func(c *corev1.Container) {
			c.VolumeMounts = []corev1.VolumeMount{
				{Name: "data", MountPath: "/data"},
				{Name: "missing", MountPath: "/data"},
				{Name: "data", MountPath: "/x", SubPath: "../etc"},
			}
		}, []string{
			"NotFound spec.containers[0].volumeMounts[1].name", "Invalid spec.containers[0].volumeMounts[1].mountPath",
			"Invalid spec.containers[0].volumeMounts.subPath",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := validPod()
			pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			tt.edit(&pod.Spec.Containers[0])
			expectErrors(t, ValidatePod(pod), tt.want...)
		})
	}
}

func TestValidateInitContainers(t *testing.T) {
	pod := validPod()
	initC := pod.Spec.Containers[0]
	initC.Name = "init"
	initC.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
		TimeoutSeconds: 1, PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
	sidecar := initC
	sidecar.Name = "sidecar"
	sidecar.RestartPolicy = ptrTo(corev1.ContainerRestartPolicyAlways)
	weird := pod.Spec.Containers[0]
	weird.Name = "weird"
	weird.RestartPolicy = ptrTo(corev1.ContainerRestartPolicy("Never"))
	pod.Spec.InitContainers = []corev1.Container{initC, sidecar, weird}
	expectErrors(t, ValidatePod(pod),
		"Forbidden spec.initContainers[0].readinessProbe",
		"NotSupported spec.initContainers[2].restartPolicy")
}
