package kerneltest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"kite/internal/cni"
)

// Run by hand with no environment, the plugin prints the spec's error
// object with code 4 on stdout, says so on stderr, and exits non-zero.
func TestNoEnvironment(t *testing.T) {
	h := newHarness(t, "kt10", "10.244.10.0/24")
	cmd := exec.Command(filepath.Join(h.binDir, cni.PluginType))
	cmd.Env = []string{}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v, want a non-zero status", err)
	}
	var got struct {
		CNIVersion string `json:"cniVersion"`
		Code       uint   `json:"code"`
		Msg        string `json:"msg"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
	}
	if got.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(got.Msg, "CNI_COMMAND") || got.CNIVersion == "" {
		t.Errorf("stdout = %s, want code 4 naming CNI_COMMAND, with cniVersion", stdout.String())
	}
	if !strings.Contains(stderr.String(), "kite CNI plugin") {
		t.Errorf("stderr = %q, want a message about the plugin", stderr.String())
	}
	t.Logf("stdout:\n%sstderr:\n%s", stdout.String(), stderr.String())
}

// VERSION lists the spec versions the plugin accepts.
func TestVersion(t *testing.T) {
	h := newHarness(t, "kt11", "10.244.11.0/24")
	info, err := h.cni.GetVersionInfo(context.Background(), cni.PluginType)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.SupportedVersions(); !slices.Equal(got, cni.SupportedVersions()) {
		t.Errorf("VERSION = %v, want %v", got, cni.SupportedVersions())
	}
}

// Configs of every supported version work end to end, with results in
// the config's version; unsupported versions and invalid configs get the
// spec's codes.
func TestConfigVersions(t *testing.T) {
	h := newHarness(t, "kt12", "10.244.12.0/24")
	for _, v := range cni.SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			l := h.list(v, h.conf())
			p := newPod(t)
			r := h.mustAdd(l, p.rt("eth0"))
			if err := p.ping("10.244.12.1"); err != nil {
				t.Error(err)
			}
			if v != "0.3.0" && v != "0.3.1" {
				if err := h.check(l, p.rt("eth0")); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			_ = r
			h.mustDel(l, p.rt("eth0"))
		})
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations left: %v", r)
	}
}

func TestErrorCodes(t *testing.T) {
	h := newHarness(t, "kt13", "10.244.13.0/24")
	p := newPod(t)
	for _, tc := range []struct {
		name    string
		version string
		edit    func(c map[string]any)
		code    uint
		want    string
	}{
		{"bad subnet", "1.0.0", func(c map[string]any) { c["ipam"] = map[string]any{"subnet": "10.244.13.0/33"} }, types.ErrInvalidNetworkConfig, "not a CIDR"},
		{"subnet missing", "1.0.0", func(c map[string]any) { c["ipam"] = map[string]any{} }, types.ErrInvalidNetworkConfig, "ipam.subnet is missing"},
		{"subnet too small", "1.0.0", func(c map[string]any) { c["ipam"] = map[string]any{"subnet": "10.244.13.0/31"} }, types.ErrInvalidNetworkConfig, "too small"},
		{"ipv6", "1.0.0", func(c map[string]any) { c["ipam"] = map[string]any{"subnet": "fd00::/64"} }, types.ErrInvalidNetworkConfig, "only IPv4"},
		{"foreign ipam", "1.0.0", func(c map[string]any) { c["ipam"] = map[string]any{"type": "host-local", "subnet": "10.244.13.0/24"} }, types.ErrInvalidNetworkConfig, "own IPAM"},
		{"bridge name too long", "1.0.0", func(c map[string]any) { c["bridge"] = "averylongbridgename" }, types.ErrInvalidNetworkConfig, "longer than 15"},
		{"mtu of the wrong type", "1.0.0", func(c map[string]any) { c["mtu"] = "big" }, types.ErrInvalidNetworkConfig, "invalid network config"},
		{"unsupported version", "0.2.0", func(c map[string]any) {}, types.ErrIncompatibleCNIVersion, "incompatible CNI versions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.conf()
			tc.edit(c)
			_, err := h.add(h.list(tc.version, c), p.rt("eth0"))
			if code := cniCode(err); code != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ADD = %v (code %d), want code %d saying %q", err, code, tc.code, tc.want)
			}
		})
	}
	// A namespace path that is no namespace.
	rt := p.rt("eth0")
	rt.NetNS = "/run/netns/no-such-pod"
	_, err := h.add(h.list("1.0.0", h.conf()), rt)
	if code := cniCode(err); code != types.ErrInvalidNetNS {
		t.Errorf("ADD into a missing netns = %v (code %d), want code %d", err, code, types.ErrInvalidNetNS)
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("failed ADDs left reservations %v", r)
	}
}

// GC (spec 1.1) frees the reservations and veths of attachments not in
// cni.dev/valid-attachments and keeps the others.
func TestGC(t *testing.T) {
	h := newHarness(t, "kt14", "10.244.14.0/24")
	l := h.list("1.1.0", h.conf())
	keep, lose := newPod(t), newPod(t)
	h.mustAdd(l, keep.rt("eth0"))
	rLose := h.mustAdd(l, lose.rt("eth0"))

	// A runtime with no cached attachments (a fresh cache dir), so that
	// libcni sends only the plugin GC and no DEL.
	fresh := libcni.NewCNIConfigWithCacheDir([]string{h.binDir}, t.TempDir(), nil)
	err := fresh.GCNetworkList(context.Background(), l, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.id, IfName: "eth0"}}})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if r := h.reservations(); len(r) != 1 {
		t.Errorf("reservations after GC: %v, want only the kept pod's", r)
	}
	if slices.Contains(h.reservations(), podIP(t, rLose)) {
		t.Errorf("GC kept %s", podIP(t, rLose))
	}
	if v := h.veths(); len(v) != 1 || v[0] != cni.HostVethName(keep.id, "eth0") {
		t.Errorf("veths after GC: %v, want only %s", v, cni.HostVethName(keep.id, "eth0"))
	}
	if err := h.check(l, keep.rt("eth0")); err != nil {
		t.Errorf("CHECK of the kept pod after GC: %v", err)
	}

	// Without the attachment list, GC refuses (code 7) rather than free
	// everything.
	cmd := exec.Command(filepath.Join(h.binDir, cni.PluginType))
	cmd.Env = []string{"CNI_COMMAND=GC", "CNI_PATH=" + h.binDir}
	c := h.conf()
	c["name"], c["cniVersion"] = "kite", "1.1.0"
	stdin, _ := json.Marshal(c)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.Output()
	if err == nil || !strings.Contains(string(out), `"code": 7`) {
		t.Errorf("GC without cni.dev/valid-attachments: %v %s, want code 7", err, out)
	}
	if r := h.reservations(); len(r) != 1 {
		t.Errorf("reservations after a refused GC: %v", r)
	}

	// An empty list means nothing is valid any more.
	if err := fresh.GCNetworkList(context.Background(), l, &libcni.GCArgs{}); err != nil {
		t.Fatalf("GC with no valid attachment: %v", err)
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations after GC of everything: %v", r)
	}
	if v := h.veths(); len(v) != 0 {
		t.Errorf("veths after GC of everything: %v", v)
	}
	h.mustDel(l, lose.rt("eth0"))
	h.mustDel(l, keep.rt("eth0"))
}

// STATUS is ready when the data dir is writable and answers code 50 when
// it is not.
func TestStatus(t *testing.T) {
	h := newHarness(t, "kt15", "10.244.15.0/24")
	if err := h.cni.GetStatusNetworkList(context.Background(), h.list("1.1.0", h.conf())); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	c := h.conf()
	c["ipam"] = map[string]any{"subnet": h.subnet, "dataDir": filepath.Join(blocker, "networks")}
	err := h.cni.GetStatusNetworkList(context.Background(), h.list("1.1.0", c))
	if code := cniCode(err); code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with an unusable data dir = %v (code %d), want code 50", err, code)
	}
}
