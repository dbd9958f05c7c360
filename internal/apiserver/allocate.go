package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Service IPs and node ports are reserved one etcd key each
// (/registry/kite/serviceips/<ip>, /registry/kite/nodeports/<port>), created
// only if absent, so two servers sharing etcd never hand out one value. A
// reservation is made before the Service is written and released if the
// write fails; a crash in between leaves a reservation without a Service,
// which the repair loop frees.
const (
	ipKeyPrefix   = "/registry/kite/serviceips/"
	portKeyPrefix = "/registry/kite/nodeports/"
)

// reservation is the value of a reservation key.
type reservation struct {
	Owner string    `json:"owner"` // namespace/name
	Time  time.Time `json:"time"`
}

// serviceRanges are the pools Services draw from.
type serviceRanges struct {
	ipNet           *net.IPNet
	size            int64 // usable addresses: network and broadcast excluded
	portBase, ports int
}

func newServiceRanges(cidr string) (*serviceRanges, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ones, bits := n.Mask.Size()
	if bits-ones > 30 {
		return nil, fmt.Errorf("service CIDR %s is too large", cidr)
	}
	size := int64(1)<<(bits-ones) - 2
	if size < 8 {
		return nil, fmt.Errorf("service CIDR %s is too small", cidr)
	}
	return &serviceRanges{ipNet: n, size: size, portBase: 30000, ports: 2768}, nil
}

// ipAt is the address at offset (0 = the first usable address).
func (sr *serviceRanges) ipAt(offset int64) net.IP {
	base := new(big.Int).SetBytes(sr.ipNet.IP.To16())
	ip := new(big.Int).Add(base, big.NewInt(offset+1)).Bytes()
	out := make(net.IP, 16)
	copy(out[16-len(ip):], ip)
	if v4 := out.To4(); v4 != nil && sr.ipNet.IP.To4() != nil {
		return v4
	}
	return out
}

func (sr *serviceRanges) offsetOf(ip net.IP) (int64, bool) {
	if !sr.ipNet.Contains(ip) {
		return 0, false
	}
	base := new(big.Int).SetBytes(sr.ipNet.IP.To16())
	off := new(big.Int).Sub(new(big.Int).SetBytes(ip.To16()), base).Int64() - 1
	return off, off >= 0 && off < sr.size
}

func (sr *serviceRanges) portRange() string {
	return fmt.Sprintf("%d-%d", sr.portBase, sr.portBase+sr.ports-1)
}

// reserve creates key for owner if it is free.
func (s *Server) reserve(ctx context.Context, key, owner string, dryRun bool) (bool, error) {
	c := s.store.Client()
	if dryRun {
		resp, err := c.Get(ctx, key, clientv3.WithCountOnly())
		return err == nil && resp.Count == 0, err
	}
	val, _ := json.Marshal(reservation{Owner: owner, Time: time.Now()})
	resp, err := c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return true, nil
	}
	// Ours already: a retried update of the same object.
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		var r reservation
		if json.Unmarshal(kvs[0].Value, &r) == nil && r.Owner == owner {
			return true, nil
		}
	}
	return false, nil
}

func (s *Server) unreserve(ctx context.Context, key string) {
	if _, err := s.store.Client().Delete(context.WithoutCancel(ctx), key); err != nil {
		s.log.Error(err, "release reservation", "key", key)
	}
}

// allocate reserves what a new or changed object needs from shared pools
// (a Service's clusterIP and nodePorts). The returned release undoes the
// reservations made here, for when the object is not written after all.
func (s *Server) allocate(ctx context.Context, res *resource, obj, old runtime.Object, dryRun bool) (func(), error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return func() {}, nil
	}
	var oldSvc *corev1.Service
	if old != nil {
		oldSvc = old.(*corev1.Service)
	}
	var made []string
	release := func() {
		for _, k := range made {
			s.unreserve(ctx, k)
		}
	}
	owner := svc.Namespace + "/" + svc.Name + "/" + string(svc.UID)
	if err := s.allocateClusterIP(ctx, svc, oldSvc, owner, dryRun, &made); err != nil {
		release()
		return nil, err
	}
	if err := s.allocateNodePorts(ctx, svc, oldSvc, owner, dryRun, &made); err != nil {
		release()
		return nil, err
	}
	if dryRun {
		made = nil
	}
	return release, nil
}

// releaseDropped frees, after an update is written, what the old state of
// an object held and the new one does not.
func (s *Server) releaseDropped(ctx context.Context, obj, old runtime.Object) {
	svc, ok1 := obj.(*corev1.Service)
	oldSvc, ok2 := old.(*corev1.Service)
	if !ok1 || !ok2 {
		return
	}
	keep := s.serviceKeys(svc)
	for _, k := range s.serviceKeys(oldSvc) {
		if !contains(keep, k) {
			s.unreserve(ctx, k)
		}
	}
}

// keepAllocated: an update that leaves clusterIP or nodePorts empty keeps
// the allocated ones, and a type change drops the fields the new type
// cannot have when the client left them as they were (upstream does both,
// before validating).
func keepAllocated(obj, oldObj runtime.Object) {
	svc, old := obj.(*corev1.Service), oldObj.(*corev1.Service)
	if svc.Spec.Type == corev1.ServiceTypeExternalName && old.Spec.Type != corev1.ServiceTypeExternalName {
		if svc.Spec.ClusterIP == old.Spec.ClusterIP {
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
			svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = nil, nil
		}
	} else if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) == 0 && old.Spec.ClusterIP != "" {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
	}
	needPorts := needsNodePorts(svc)
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		for _, op := range old.Spec.Ports {
			if op.Port != p.Port || op.Protocol != p.Protocol {
				continue
			}
			switch {
			case !needPorts && p.NodePort == op.NodePort:
				p.NodePort = 0
			case needPorts && p.NodePort == 0:
				p.NodePort = op.NodePort
			}
		}
	}
	if !needsHealthCheckPort(svc) && svc.Spec.HealthCheckNodePort == old.Spec.HealthCheckNodePort {
		svc.Spec.HealthCheckNodePort = 0
	} else if needsHealthCheckPort(svc) && svc.Spec.HealthCheckNodePort == 0 {
		svc.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
	}
	external := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	if !external && svc.Spec.ExternalTrafficPolicy == old.Spec.ExternalTrafficPolicy {
		svc.Spec.ExternalTrafficPolicy = ""
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		if equalPtr(svc.Spec.AllocateLoadBalancerNodePorts, old.Spec.AllocateLoadBalancerNodePorts) {
			svc.Spec.AllocateLoadBalancerNodePorts = nil
		}
		if equalPtr(svc.Spec.LoadBalancerClass, old.Spec.LoadBalancerClass) {
			svc.Spec.LoadBalancerClass = nil
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName && svc.Spec.InternalTrafficPolicy != nil &&
		equalPtr(svc.Spec.InternalTrafficPolicy, old.Spec.InternalTrafficPolicy) {
		svc.Spec.InternalTrafficPolicy = nil
	}
}

func equalPtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

func needsNodePorts(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

func needsHealthCheckPort(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// serviceKeys are the reservation keys a Service holds.
func (s *Server) serviceKeys(svc *corev1.Service) []string {
	var keys []string
	if ip := net.ParseIP(svc.Spec.ClusterIP); ip != nil {
		keys = append(keys, ipKeyPrefix+ip.String())
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			keys = append(keys, portKeyPrefix+strconv.Itoa(int(p.NodePort)))
		}
	}
	if svc.Spec.HealthCheckNodePort != 0 {
		keys = append(keys, portKeyPrefix+strconv.Itoa(int(svc.Spec.HealthCheckNodePort)))
	}
	return keys
}

func svcInvalid(svc *corev1.Service, path *field.Path, value interface{}, msg string) error {
	return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList{field.Invalid(path, value, msg)})
}

func (s *Server) allocateClusterIP(ctx context.Context, svc, old *corev1.Service, owner string, dryRun bool, made *[]string) error {
	family := corev1.IPv4Protocol
	if s.ranges.ipNet.IP.To4() == nil {
		family = corev1.IPv6Protocol
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName {
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{family}
		}
		if svc.Spec.IPFamilyPolicy == nil {
			single := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &single
		}
	}
	if !needsClusterIP(svc) {
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
		}
		return nil
	}
	// Upstream reports allocation failures on the whole list.
	path := field.NewPath("spec", "clusterIPs")
	if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) > 0 {
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	if old != nil && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP == old.Spec.ClusterIP {
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		return nil // already ours
	}
	if svc.Spec.ClusterIP != "" {
		ip := net.ParseIP(svc.Spec.ClusterIP)
		if ip == nil {
			return svcInvalid(svc, path.Index(0), svc.Spec.ClusterIP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
		}
		if _, ok := s.ranges.offsetOf(ip); !ok {
			return svcInvalid(svc, path, []string{svc.Spec.ClusterIP}, fmt.Sprintf("failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", ip, s.ranges.ipNet))
		}
		key := ipKeyPrefix + ip.String()
		ok, err := s.reserve(ctx, key, owner, dryRun)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		if !ok {
			return svcInvalid(svc, path, []string{svc.Spec.ClusterIP}, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", ip))
		}
		*made = append(*made, key)
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip.String(), []string{ip.String()}
		return nil
	}
	// Dynamic addresses come from the upper part of the range first,
	// leaving the lower band to addresses users ask for (upstream's
	// KEP-3070).
	band := min(max(16, s.ranges.size/16), 256)
	if band >= s.ranges.size {
		band = 0
	}
	for _, r := range [][2]int64{{band, s.ranges.size}, {0, band}} {
		lo, hi := r[0], r[1]
		if hi <= lo {
			continue
		}
		start := lo + rand.Int64N(hi-lo)
		for i := int64(0); i < hi-lo; i++ {
			ip := s.ranges.ipAt(lo + (start-lo+i)%(hi-lo))
			key := ipKeyPrefix + ip.String()
			ok, err := s.reserve(ctx, key, owner, dryRun)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			if ok {
				*made = append(*made, key)
				svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip.String(), []string{ip.String()}
				return nil
			}
		}
	}
	return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range %s is full", s.ranges.ipNet))
}

func (s *Server) allocateNodePorts(ctx context.Context, svc, old *corev1.Service, owner string, dryRun bool, made *[]string) error {
	held := map[int32]bool{}
	if old != nil {
		for _, p := range old.Spec.Ports {
			held[p.NodePort] = true
		}
		held[old.Spec.HealthCheckNodePort] = true
	}
	// One port number may serve the same port's TCP and UDP.
	mine := map[int32]bool{}
	take := func(path *field.Path, port *int32) error {
		if *port != 0 {
			if held[*port] || mine[*port] {
				mine[*port] = true
				return nil
			}
			if int(*port) < s.ranges.portBase || int(*port) >= s.ranges.portBase+s.ranges.ports {
				return svcInvalid(svc, path, *port, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %s", s.ranges.portRange()))
			}
			key := portKeyPrefix + strconv.Itoa(int(*port))
			ok, err := s.reserve(ctx, key, owner, dryRun)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			if !ok {
				return svcInvalid(svc, path, *port, "provided port is already allocated")
			}
			*made = append(*made, key)
			mine[*port] = true
			return nil
		}
		start := rand.IntN(s.ranges.ports)
		for i := 0; i < s.ranges.ports; i++ {
			p := int32(s.ranges.portBase + (start+i)%s.ranges.ports)
			if mine[p] {
				continue
			}
			key := portKeyPrefix + strconv.Itoa(int(p))
			ok, err := s.reserve(ctx, key, owner, dryRun)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			if ok {
				*made = append(*made, key)
				mine[p], *port = true, p
				return nil
			}
		}
		return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: range %s is full", s.ranges.portRange()))
	}
	if needsNodePorts(svc) {
		for i := range svc.Spec.Ports {
			if err := take(field.NewPath("spec", "ports").Index(i).Child("nodePort"), &svc.Spec.Ports[i].NodePort); err != nil {
				return err
			}
		}
	}
	if needsHealthCheckPort(svc) {
		if err := take(field.NewPath("spec", "healthCheckNodePort"), &svc.Spec.HealthCheckNodePort); err != nil {
			return err
		}
	}
	return nil
}

// release frees what a deleted object held.
func (s *Server) release(ctx context.Context, res *resource, obj runtime.Object) {
	if svc, ok := obj.(*corev1.Service); ok {
		for _, k := range s.serviceKeys(svc) {
			s.unreserve(ctx, k)
		}
	}
}

// repairAllocations frees reservations whose Service no longer holds them
// (a crash between reserving and writing, or between deleting and
// releasing). Young reservations are left alone: their Service may be
// being written right now.
func (s *Server) repairAllocations(ctx context.Context, minAge time.Duration) error {
	svcRes := s.reg.lookup(coreV1, "services")
	// Reservations first, Services second: a reservation made after the
	// first read is not looked at, and one made before has its Service
	// (if written) in the second read.
	resv, err := s.store.Client().Get(ctx, "/registry/kite/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	list, err := s.store.List(ctx, svcRes.prefix(""), svcRes.newObj, storageListAll(nil))
	if err != nil {
		return err
	}
	held := map[string]bool{}
	reserved := map[string]bool{}
	for _, kv := range resv.Kvs {
		reserved[string(kv.Key)] = true
	}
	for _, o := range list.Items {
		svc := o.(*corev1.Service)
		for _, k := range s.serviceKeys(svc) {
			held[k] = true
			if !reserved[k] {
				// Held without a reservation (an interrupted
				// release): take it back for its Service.
				if _, err := s.reserve(ctx, k, svc.Namespace+"/"+svc.Name+"/"+string(svc.UID), false); err != nil {
					return err
				}
			}
		}
	}
	for _, kv := range resv.Kvs {
		key := string(kv.Key)
		if !strings.HasPrefix(key, ipKeyPrefix) && !strings.HasPrefix(key, portKeyPrefix) || held[key] {
			continue
		}
		var r reservation
		if json.Unmarshal(kv.Value, &r) == nil && time.Since(r.Time) < minAge {
			continue
		}
		// Delete only the version we looked at.
		if _, err := s.store.Client().Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).Commit(); err != nil {
			return err
		}
		s.log.Info("freed leaked reservation", "key", key, "owner", r.Owner)
	}
	return nil
}

func schemaGK(group, kind string) schema.GroupKind { return schema.GroupKind{Group: group, Kind: kind} }
