package kerneltest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"kite/internal/cni"
	"kite/internal/testutil"
)

// The test binary doubles as the plugin: run as "kite" (the name libcni
// finds it under in the bin dir), it is the plugin and nothing else.
func init() {
	if filepath.Base(os.Args[0]) == cni.PluginType {
		cni.Main()
		os.Exit(0)
	}
}

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// referenceBinDir is where Debian's containernetworking-plugins installs
// the reference plugins (portmap, bridge, host-local, …).
const referenceBinDir = "/usr/lib/cni"

var netnsDirOnce sync.Once

// privateNetnsDir mounts a tmpfs on /run/netns in this (private) mount
// namespace, so `ip netns add` stays inside it and vanishes with it.
func privateNetnsDir(t *testing.T) {
	t.Helper()
	netnsDirOnce.Do(func() {
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, "mount", "-t", "tmpfs", "tmpfs", "/run/netns")
	})
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// harness is a node: a CNI bin dir with the plugin, a libcni cache dir, an
// IPAM data dir, and one network (bridge + subnet) of its own.
type harness struct {
	t        *testing.T
	binDir   string
	cacheDir string
	dataDir  string
	bridge   string
	subnet   string
	cni      *libcni.CNIConfig
}

func newHarness(t *testing.T, bridge, subnet string) *harness {
	t.Helper()
	if !testutil.InNetns() {
		t.Skip("needs the private namespace of testutil.MainInNetns")
	}
	privateNetnsDir(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:        t,
		binDir:   t.TempDir(),
		cacheDir: t.TempDir(),
		dataDir:  filepath.Join(t.TempDir(), "networks", "kite"),
		bridge:   bridge,
		subnet:   subnet,
	}
	if err := os.Symlink(self, filepath.Join(h.binDir, cni.PluginType)); err != nil {
		t.Fatal(err)
	}
	h.cni = libcni.NewCNIConfigWithCacheDir([]string{h.binDir, referenceBinDir}, h.cacheDir, nil)
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	return h
}

// conf is the kite plugin config of the harness's network, as a map the
// caller may change.
func (h *harness) conf() map[string]any {
	return map[string]any{
		"type":   cni.PluginType,
		"bridge": h.bridge,
		"mtu":    1400,
		"ipam":   map[string]any{"subnet": h.subnet, "dataDir": h.dataDir},
		"dns":    map[string]any{"nameservers": []string{"10.96.0.10"}, "search": []string{"default.svc.cluster.local"}},
	}
}

// list builds a conflist of the given version from plugin configs.
func (h *harness) list(version string, plugins ...map[string]any) *libcni.NetworkConfigList {
	h.t.Helper()
	data, err := json.Marshal(map[string]any{"cniVersion": version, "name": "kite", "plugins": plugins})
	if err != nil {
		h.t.Fatal(err)
	}
	l, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

// pod is a network namespace standing for a pod sandbox.
type pod struct {
	name, path, id string
}

var podSeq struct {
	sync.Mutex
	n int
}

func newPod(t *testing.T) *pod {
	t.Helper()
	podSeq.Lock()
	podSeq.n++
	n := podSeq.n
	podSeq.Unlock()
	p := &pod{name: fmt.Sprintf("pod%d", n), id: fmt.Sprintf("c%04d-%d", n, time.Now().UnixNano()%100000)}
	p.path = "/run/netns/" + p.name
	run(t, "ip", "netns", "add", p.name)
	run(t, "ip", "-n", p.name, "link", "set", "lo", "up")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.name).Run() })
	return p
}

func (p *pod) rt(ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.path, IfName: ifName}
}

func (p *pod) delete(t *testing.T) { run(t, "ip", "netns", "del", p.name) }

// inPod runs a command in the pod's namespace.
func (p *pod) exec(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", p.name, name}, args...)...).CombinedOutput()
	return string(out), err
}

func (h *harness) add(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*current.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := h.cni.AddNetworkList(ctx, l, rt)
	if err != nil {
		return nil, err
	}
	if res.Version() != l.CNIVersion {
		return nil, fmt.Errorf("ADD answered with a result of version %s to a %s config", res.Version(), l.CNIVersion)
	}
	return current.NewResultFromResult(res)
}

func (h *harness) mustAdd(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *current.Result {
	h.t.Helper()
	r, err := h.add(l, rt)
	if err != nil {
		h.t.Fatalf("ADD %s/%s: %v", rt.ContainerID, rt.IfName, err)
	}
	return r
}

func (h *harness) check(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.cni.CheckNetworkList(ctx, l, rt)
}

func (h *harness) del(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.cni.DelNetworkList(ctx, l, rt)
}

func (h *harness) mustDel(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	h.t.Helper()
	if err := h.del(l, rt); err != nil {
		h.t.Fatalf("DEL %s/%s: %v", rt.ContainerID, rt.IfName, err)
	}
}

// reservations lists the address files in the IPAM data dir.
func (h *harness) reservations() []string {
	h.t.Helper()
	entries, err := os.ReadDir(h.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "last_reserved_ip" {
			out = append(out, e.Name())
		}
	}
	return out
}

// veths lists the kite host veths on the harness's bridge.
func (h *harness) veths() []string {
	h.t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "master", h.bridge, "type", "veth").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "does not exist") {
			return nil
		}
		h.t.Fatalf("ip link show master %s: %v\n%s", h.bridge, err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], "kite") {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return names
}

// linkExists reports whether a link of that name exists in this
// namespace, attached to a bridge or not.
func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// cniCode is the CNI error code in err, or 0.
func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// ping sends one echo request from the pod.
func (p *pod) ping(dst string) error {
	name, args := "busybox", []string{"ping"}
	if path, err := exec.LookPath("ping"); err == nil {
		name, args = path, nil
	}
	out, err := p.exec(name, append(args, "-c", "1", "-W", "2", dst)...)
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", dst, p.name, err, out)
	}
	return nil
}

func podIP(t *testing.T, r *current.Result) string {
	t.Helper()
	if len(r.IPs) != 1 {
		t.Fatalf("result has %d IPs, want 1: %v", len(r.IPs), r)
	}
	return r.IPs[0].Address.IP.String()
}
