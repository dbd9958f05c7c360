package controlplane

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"kite/internal/image"
)

// The cluster DNS add-on, deployed as upstream deploys CoreDNS: the
// Deployment kite-dns (pods labelled k8s-app=kube-dns running `kite dns`
// from the system image) behind the Service kube-dns at the tenth address
// of the service CIDR. Like the addon manager's EnsureExists mode, the
// objects are created when missing and otherwise left as the user made
// them.
const (
	dnsName         = "kite-dns"
	dnsServiceName  = "kube-dns"
	dnsAppLabel     = "kube-dns" // k8s-app, as every kube-dns implementation
	dnsReplicas     = 2
	dnsEnsurePeriod = 30 * time.Second
)

// dnsServiceIP is the tenth address of the service CIDR (10.96.0.10).
func dnsServiceIP(serviceCIDR string) (string, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return "", err
	}
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	if !p.Contains(a) {
		return "", fmt.Errorf("service CIDR %s has no tenth address for kube-dns", serviceCIDR)
	}
	return a.String(), nil
}

// dnsAddon keeps the DNS add-on's objects in existence.
type dnsAddon struct {
	client kubernetes.Interface
	domain string
	ip     string
}

func newDNSAddon(client kubernetes.Interface, serviceCIDR, domain string) (*dnsAddon, error) {
	ip, err := dnsServiceIP(serviceCIDR)
	if err != nil {
		return nil, err
	}
	return &dnsAddon{client: client, domain: domain, ip: ip}, nil
}

// Run ensures the objects now and every dnsEnsurePeriod until ctx ends.
func (d *dnsAddon) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("dns-addon")
	for {
		if err := d.ensure(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "ensure the cluster DNS add-on")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(dnsEnsurePeriod):
		}
	}
}

func (d *dnsAddon) ensure(ctx context.Context) error {
	ns := metav1.NamespaceSystem
	opts := metav1.CreateOptions{FieldManager: dnsName + "-addon"}
	if _, err := d.client.CoreV1().ServiceAccounts(ns).Create(ctx, d.serviceAccount(), opts); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("serviceaccount %s: %w", dnsName, err)
	}
	if _, err := d.client.CoreV1().Services(ns).Create(ctx, d.service(), opts); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service %s: %w", dnsServiceName, err)
	}
	if _, err := d.client.AppsV1().Deployments(ns).Create(ctx, d.deployment(), opts); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("deployment %s: %w", dnsName, err)
	}
	return nil
}

func dnsLabels() map[string]string { return map[string]string{"k8s-app": dnsAppLabel} }

func (d *dnsAddon) serviceAccount() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: dnsName, Namespace: metav1.NamespaceSystem}}
}

func (d *dnsAddon) service() *corev1.Service {
	labels := dnsLabels()
	labels["kubernetes.io/cluster-service"] = "true"
	labels["kubernetes.io/name"] = dnsName
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: dnsServiceName, Namespace: metav1.NamespaceSystem, Labels: labels,
			Annotations: map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: d.ip,
			Selector:  dnsLabels(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
			},
		},
	}
}

func (d *dnsAddon) deployment() *appsv1.Deployment {
	probe := func(path string, port int32, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds: period, TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1,
		}
	}
	live := probe("/health", 8080, 10)
	live.FailureThreshold = 5
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: dnsName, Namespace: metav1.NamespaceSystem, Labels: dnsLabels()},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](dnsReplicas),
			Selector: &metav1.LabelSelector{MatchLabels: dnsLabels()},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: dnsLabels()},
				Spec: corev1.PodSpec{
					ServiceAccountName: dnsName,
					// The node's resolvers, not the cluster's own DNS.
					DNSPolicy: corev1.DNSDefault,
					// Longer than kite dns's lameduck (5 s): it leaves the
					// endpoints before it stops answering.
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					Tolerations: []corev1.Toleration{
						{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
						{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
					},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: corev1.LabelHostname,
								LabelSelector: &metav1.LabelSelector{MatchLabels: dnsLabels()}}}},
					}},
					Containers: []corev1.Container{{
						Name:            "dns",
						Image:           image.SystemImage,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Command:         []string{"/kite", "dns"},
						Args:            []string{"--cluster-domain=" + d.domain},
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe:  live,
						ReadinessProbe: probe("/ready", 8181, 2),
					}},
				},
			},
		},
	}
}
