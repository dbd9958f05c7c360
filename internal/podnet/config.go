package podnet

import (
	"errors"
	"fmt"
	"time"

	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Modes.
const (
	// ModeHostGW routes each remote podCIDR via the remote node's IP.
	// Every node must sit on one L2 segment (the gateway must be directly
	// connected).
	ModeHostGW = "host-gw"
	// ModeVXLAN routes each remote podCIDR through a VXLAN device, with
	// static neighbour and FDB entries: works across any L3 network.
	ModeVXLAN = "vxlan"
)

// Names and numbers that other components and operators see.
const (
	// RouteProtocol marks every route podnet owns ("proto 75" in `ip
	// route`; 75 is ASCII 'K'). Routes of any other protocol are never
	// touched. 75 is not in iproute2's rt_protos; routing daemons use their
	// registered numbers (bird 12, zebra 11, ...) and Calico's Felix 80.
	RouteProtocol = 75

	// AnnotationVXLANMAC is the MAC of a node's VTEP, written by that
	// node's own podnet in VXLAN mode.
	AnnotationVXLANMAC = "kite.dev/vxlan-mac"
	// AnnotationVXLANIP is the underlay address VXLAN packets for the node
	// go to (its InternalIP).
	AnnotationVXLANIP = "kite.dev/vxlan-ip"

	DefaultVXLANDevice = "kite.vxlan"
	DefaultVXLANID     = 1
	// DefaultVXLANPort is the Linux kernel's (and flannel's) VXLAN port;
	// IANA's is 4789.
	DefaultVXLANPort = 8472
	// VXLANOverhead is what encapsulation adds to a packet on an IPv4
	// underlay: outer IP (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
	VXLANOverhead = 50

	DefaultResyncPeriod = 30 * time.Second
)

// Event reasons, on the Node whose pods cannot be reached.
const (
	// EventHostGWUnreachable: in host-gw mode, the node's IP is not on a
	// directly connected subnet of this node.
	EventHostGWUnreachable = "HostGatewayUnreachable"
	// EventRouteConflict: a route podnet does not own already covers the
	// node's podCIDR exactly; podnet leaves it alone.
	EventRouteConflict = "PodRouteConflict"
	// EventRouteFailed: the kernel refused the route, neighbour or FDB
	// entry.
	EventRouteFailed = "PodRouteFailed"
)

// Config configures one node's pod routes.
type Config struct {
	// Client patches this node's VTEP annotations (VXLAN mode).
	Client kubernetes.Interface
	// Nodes is the node informer. If set, the caller starts its factory
	// after New; if nil, podnet runs its own from Client.
	Nodes coreinformers.NodeInformer
	// Recorder, if set, emits warning events on nodes whose pods cannot
	// be reached; problems are logged either way.
	Recorder record.EventRecorder

	// NodeName is this node's Node object.
	NodeName string
	// Mode is ModeHostGW (default) or ModeVXLAN. Every node of a cluster
	// must use the same mode.
	Mode string
	// VXLANDevice, VXLANID and VXLANPort describe the VXLAN device
	// (defaults kite.vxlan, 1, 8472); identical on every node.
	VXLANDevice string
	VXLANID     int
	VXLANPort   int
	// MTU of the VXLAN device; 0: the underlay link's MTU minus
	// VXLANOverhead. Pods' MTU should be no larger (see Controller.MTU).
	MTU int
	// ResyncPeriod: the kernel is compared with the desired state at least
	// this often, repairing drift (default 30 s).
	ResyncPeriod time.Duration
	// NetNS is the path of the network namespace to program; empty means
	// the caller's own (the agent runs inside its node's namespace). Tests
	// point several controllers at different namespaces.
	NetNS string
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeHostGW
	}
	if c.VXLANDevice == "" {
		c.VXLANDevice = DefaultVXLANDevice
	}
	if c.VXLANID == 0 {
		c.VXLANID = DefaultVXLANID
	}
	if c.VXLANPort == 0 {
		c.VXLANPort = DefaultVXLANPort
	}
	if c.ResyncPeriod == 0 {
		c.ResyncPeriod = DefaultResyncPeriod
	}
	return c
}

// Validate reports a missing dependency or a setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("podnet: Client is required"))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("podnet: NodeName is required"))
	}
	if c.Mode != ModeHostGW && c.Mode != ModeVXLAN {
		errs = append(errs, fmt.Errorf("podnet: mode %q: want %s or %s", c.Mode, ModeHostGW, ModeVXLAN))
	}
	if n := len(c.VXLANDevice); n > 15 {
		errs = append(errs, fmt.Errorf("podnet: VXLAN device name %q is %d bytes, the kernel allows 15", c.VXLANDevice, n))
	}
	if c.VXLANID < 1 || c.VXLANID > 1<<24-1 {
		errs = append(errs, fmt.Errorf("podnet: VXLAN ID %d outside 1..16777215", c.VXLANID))
	}
	if c.VXLANPort < 1 || c.VXLANPort > 65535 {
		errs = append(errs, fmt.Errorf("podnet: VXLAN port %d outside 1..65535", c.VXLANPort))
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		errs = append(errs, fmt.Errorf("podnet: MTU %d outside 576..65535", c.MTU))
	}
	if c.ResyncPeriod < 0 {
		errs = append(errs, fmt.Errorf("podnet: negative resync period %v", c.ResyncPeriod))
	}
	return errors.Join(errs...)
}
