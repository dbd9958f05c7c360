package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// PodNetwork attaches pod sandboxes to the pod network. The real one runs
// the node's CNI configuration through libcni; tests use a fake.
type PodNetwork interface {
	// Add attaches a sandbox and returns the pod's IPs (IPv4 first).
	Add(ctx context.Context, att Attachment) ([]string, error)
	// Check verifies an attachment made by Add.
	Check(ctx context.Context, att Attachment) error
	// Del detaches a sandbox; detaching one that is not attached (or
	// half attached) succeeds.
	Del(ctx context.Context, att Attachment) error
}

// Attachment is one pod sandbox on the pod network (also kept on disk,
// in the pod's network record).
type Attachment struct {
	SandboxID    string        `json:"sandboxID"`
	NetNS        string        `json:"netns"`
	PodNamespace string        `json:"podNamespace"`
	PodName      string        `json:"podName"`
	PodUID       string        `json:"podUID"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
}

// PortMapping is a hostPort, in the portMappings capability's format.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// podIfName is the pod's interface.
const podIfName = "eth0"

// referenceCNIBinDir is where Debian's containernetworking-plugins puts
// the reference plugins (portmap, bridge, host-local).
const referenceCNIBinDir = "/usr/lib/cni"

// cniNetwork is PodNetwork over libcni with the node's CNI config: the
// first .conflist/.conf/.json in the conf dir in lexical order, as
// kubelet chooses, read again on every call (so a new podCIDR or another
// network takes effect for the next pod).
type cniNetwork struct {
	confDir string
	cni     *libcni.CNIConfig
}

func newCNINetwork(confDir, binDir, cacheDir string) *cniNetwork {
	return &cniNetwork{confDir: confDir, cni: libcni.NewCNIConfigWithCacheDir([]string{binDir, referenceCNIBinDir}, cacheDir, nil)}
}

// errNoCNIConfig: the node has no CNI config yet (no podCIDR).
var errNoCNIConfig = errors.New("network plugin not ready: no CNI configuration")

func (n *cniNetwork) load() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(n.confDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("CNI config dir %s: %w", n.confDir, err)
	}
	slices.Sort(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CNI config: %w", err)
		}
		var probe struct {
			Plugins json.RawMessage `json:"plugins"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.Plugins != nil {
			l, err := libcni.NetworkConfFromFile(f)
			if err != nil {
				return nil, fmt.Errorf("CNI config %s: %w", f, err)
			}
			return l, nil
		}
		conf, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return nil, fmt.Errorf("CNI config %s: %w", f, err)
		}
		l, err := libcni.ConfListFromConf(conf)
		if err != nil {
			return nil, fmt.Errorf("CNI config %s: %w", f, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("%w in %s", errNoCNIConfig, n.confDir)
}

func (att Attachment) runtimeConf() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: att.SandboxID, NetNS: att.NetNS, IfName: podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", att.PodNamespace},
			{"K8S_POD_NAME", att.PodName},
			{"K8S_POD_INFRA_CONTAINER_ID", att.SandboxID},
			{"K8S_POD_UID", att.PodUID},
		},
	}
	if len(att.PortMappings) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": att.PortMappings}
	}
	return rt
}

func (n *cniNetwork) Add(ctx context.Context, att Attachment) ([]string, error) {
	l, err := n.load()
	if err != nil {
		return nil, err
	}
	res, err := n.cni.AddNetworkList(ctx, l, att.runtimeConf())
	if err != nil {
		return nil, fmt.Errorf("CNI ADD %s to network %s: %w", att.SandboxID, l.Name, err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI ADD %s: result: %w", att.SandboxID, err)
	}
	var v4, v6 []string
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			v4 = append(v4, ip.Address.IP.String())
		} else {
			v6 = append(v6, ip.Address.IP.String())
		}
	}
	ips := append(v4, v6...)
	if len(ips) == 0 {
		return nil, fmt.Errorf("CNI ADD %s to network %s: the result has no IP address", att.SandboxID, l.Name)
	}
	return ips, nil
}

// Check runs CHECK over the chain. When the chain fails, the first plugin
// (the one that made the interface and address) is checked alone and
// decides: Debian's portmap 1.1.1 fails CHECK for every IPv4-only pod
// (containernetworking/plugins#819), which must not condemn a good pod.
func (n *cniNetwork) Check(ctx context.Context, att Attachment) error {
	l, err := n.load()
	if err != nil {
		return err
	}
	err = n.cni.CheckNetworkList(ctx, l, att.runtimeConf())
	if err != nil && len(l.Plugins) > 1 {
		first := *l
		first.Plugins = l.Plugins[:1]
		err = n.cni.CheckNetworkList(ctx, &first, att.runtimeConf())
	}
	if err != nil {
		return fmt.Errorf("CNI CHECK %s: %w", att.SandboxID, err)
	}
	return nil
}

func (n *cniNetwork) Del(ctx context.Context, att Attachment) error {
	l, err := n.load()
	if errors.Is(err, errNoCNIConfig) {
		return nil // nothing could have been attached
	}
	if err != nil {
		return err
	}
	if err := n.cni.DelNetworkList(ctx, l, att.runtimeConf()); err != nil {
		return fmt.Errorf("CNI DEL %s from network %s: %w", att.SandboxID, l.Name, err)
	}
	return nil
}

// podNetRecord is the pod's attachment as the agent made it, kept in the
// pod's directory: it is how the agent knows, after a restart, that a
// sandbox is attached (no second ADD) and with which addresses.
type podNetRecord struct {
	Attachment Attachment `json:"attachment"`
	IPs        []string   `json:"ips"`
	// Released: the pod finished and its attachment was deleted; IPs
	// stay for the pod's status.
	Released bool `json:"released,omitempty"`
}

func (m *podManager) readNetRecord(uid string) (*podNetRecord, error) {
	data, err := os.ReadFile(filepath.Join(m.cfg.StateDir, "pods", uid, "network.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec podNetRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("pod %s: network record: %w", uid, err)
	}
	return &rec, nil
}

func (m *podManager) writeNetRecord(uid string, rec *podNetRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(m.cfg.StateDir, "pods", uid, "network.json"), data, 0o644)
}

// writeFileAtomic replaces path's content in one rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
