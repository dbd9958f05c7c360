package apiserver

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// Every API server holds a Lease in kube-system naming its address, and
// keeps the Endpoints and EndpointSlice of the kubernetes Service listing
// the addresses of all live leases (upstream's "lease" endpoint
// reconciler). A server that stops removes its lease; one that dies is
// dropped once its lease expires.
const (
	masterLeaseLabel    = "kite.dev/apiserver"
	masterLeaseDuration = 15 * time.Second
	masterLeaseRenew    = 5 * time.Second
)

// masterAddress is the address other nodes reach this server at, or "" when
// it has none worth publishing (loopback only).
func (s *Server) masterAddress() string {
	ip := net.ParseIP(s.cfg.AdvertiseAddress)
	if ip == nil {
		host, _, _ := net.SplitHostPort(s.cfg.Listen)
		ip = net.ParseIP(host)
	}
	if ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		return ""
	}
	return ip.String()
}

func masterLeaseName(addr string) string {
	return "kite-apiserver-" + strings.NewReplacer(".", "-", ":", "-").Replace(addr)
}

// mastersLoop renews this server's lease and reconciles the kubernetes
// Service's endpoints until ctx ends, then withdraws.
func (s *Server) mastersLoop(ctx context.Context) {
	addr := s.masterAddress()
	if addr == "" {
		s.log.Info("no routable advertise address: the kubernetes Service gets no endpoints from this server")
		return
	}
	t := time.NewTicker(masterLeaseRenew)
	defer t.Stop()
	for {
		if err := s.renewMasterLease(ctx, addr); err != nil && ctx.Err() == nil {
			s.log.Error(err, "renew API server lease")
		}
		if err := s.reconcileMasters(ctx, ""); err != nil && ctx.Err() == nil {
			s.log.Error(err, "reconcile kubernetes endpoints")
		}
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			leaseRes := s.reg.lookup(coordinationv1.SchemeGroupVersion, "leases")
			_, _, _ = s.deleteObject(stop, leaseRes, metav1.NamespaceSystem, masterLeaseName(addr), &metav1.DeleteOptions{})
			_ = s.reconcileMasters(stop, addr)
			return
		case <-t.C:
		}
	}
}

func (s *Server) renewMasterLease(ctx context.Context, addr string) error {
	res := s.reg.lookup(coordinationv1.SchemeGroupVersion, "leases")
	name := masterLeaseName(addr)
	now := metav1.NewMicroTime(time.Now())
	lease := func() *coordinationv1.Lease {
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem, Labels: map[string]string{masterLeaseLabel: "true"}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(net.JoinHostPort(addr, strconv.Itoa(s.port()))),
				LeaseDurationSeconds: ptr.To(int32(masterLeaseDuration / time.Second)), RenewTime: &now},
		}
	}
	info := &requestInfo{res: res, namespace: metav1.NamespaceSystem, name: name}
	_, _, err := s.updateObject(ctx, info, func(cur runtime.Object) (runtime.Object, error) {
		l := lease()
		if cur != nil {
			l.ObjectMeta = *cur.(*coordinationv1.Lease).ObjectMeta.DeepCopy()
			l.Labels = map[string]string{masterLeaseLabel: "true"}
		}
		return l, nil
	}, writeOpts{manager: "kite-apiserver", create: true})
	return err
}

// reconcileMasters sets the kubernetes Service's endpoints to the live
// leases' addresses, leaving out drop.
func (s *Server) reconcileMasters(ctx context.Context, drop string) error {
	leaseRes := s.reg.lookup(coordinationv1.SchemeGroupVersion, "leases")
	sel := labels.SelectorFromSet(labels.Set{masterLeaseLabel: "true"})
	list, err := s.store.List(ctx, leaseRes.prefix(metav1.NamespaceSystem), leaseRes.newObj, storageListAll(func(o runtime.Object) bool {
		return sel.Matches(labels.Set(objectMeta(o).GetLabels()))
	}))
	if err != nil {
		return err
	}
	var addrs []string
	for _, o := range list.Items {
		l := o.(*coordinationv1.Lease)
		if l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue
		}
		if time.Since(l.Spec.RenewTime.Time) > time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second {
			continue
		}
		host, _, err := net.SplitHostPort(*l.Spec.HolderIdentity)
		if err != nil || host == drop {
			continue
		}
		addrs = append(addrs, host)
	}
	slices.Sort(addrs)
	port := int32(s.port())
	if err := s.writeMasterEndpoints(ctx, addrs, port); err != nil {
		return err
	}
	return s.writeMasterSlice(ctx, addrs, port)
}

func (s *Server) writeMasterEndpoints(ctx context.Context, addrs []string, port int32) error {
	res := s.reg.lookup(coreV1, "endpoints")
	want := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
		Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}}}
	if len(addrs) > 0 {
		sub := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}}
		for _, a := range addrs {
			sub.Addresses = append(sub.Addresses, corev1.EndpointAddress{IP: a})
		}
		want.Subsets = []corev1.EndpointSubset{sub}
	}
	info := &requestInfo{res: res, namespace: metav1.NamespaceDefault, name: "kubernetes"}
	_, _, err := s.updateObject(ctx, info, func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return want.DeepCopy(), nil
		}
		ep := cur.(*corev1.Endpoints)
		if equality.Semantic.DeepEqual(ep.Subsets, want.Subsets) && ep.Labels["endpointslice.kubernetes.io/skip-mirror"] == "true" {
			return ep, nil
		}
		ep.Subsets, ep.Labels = want.Subsets, want.Labels
		return ep, nil
	}, writeOpts{manager: "kite-apiserver", create: true})
	return err
}

func (s *Server) writeMasterSlice(ctx context.Context, addrs []string, port int32) error {
	res := s.reg.lookup(discoveryv1.SchemeGroupVersion, "endpointslices")
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "kite-apiserver"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, a := range addrs {
		want.Endpoints = append(want.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	info := &requestInfo{res: res, namespace: metav1.NamespaceDefault, name: "kubernetes"}
	_, _, err := s.updateObject(ctx, info, func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return want.DeepCopy(), nil
		}
		es := cur.(*discoveryv1.EndpointSlice)
		es.Labels, es.AddressType, es.Ports, es.Endpoints = want.Labels, want.AddressType, want.Ports, want.Endpoints
		return es, nil
	}, writeOpts{manager: "kite-apiserver", create: true})
	if apierrors.IsAlreadyExists(err) {
		return nil // another server created it meanwhile; the next round updates it
	}
	return err
}
