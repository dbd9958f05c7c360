package runtime

import (
	"encoding/json"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBuildSpec(t *testing.T) {
	sb := Sandbox{ID: "pod", NetNSPath: "/run/kite/netns/pod", UTSNSPath: "/run/kite/utsns/pod", IPCNSPath: "/run/kite/ipcns/pod"}
	cfg := ContainerConfig{
		ID: "c", SandboxID: "pod",
		Args: []string{"/kuard"}, Env: []string{"PATH=/bin"},
		UID: 1000, GID: 2000, AdditionalGIDs: []uint32{3000},
		Mounts: []Mount{
			{Source: "/var/lib/kite/pods/x/hosts", Destination: "/etc/hosts"},
			{Source: "/var/lib/kite/pods/x/resolv.conf", Destination: "/etc/resolv.conf/", ReadOnly: true},
		},
		Resources: &Resources{MemoryLimitBytes: 64 << 20, CPUQuota: 50000, PidsLimit: 100},
	}
	s := buildSpec(cfg, sb, "rootfs", "/kite/c")

	if s.Root.Path != "rootfs" || s.Linux.CgroupsPath != "/kite/c" || s.Hostname != "" {
		t.Errorf("root %q cgroup %q hostname %q", s.Root.Path, s.Linux.CgroupsPath, s.Hostname)
	}
	p := s.Process
	if p.Cwd != "/" || p.User.UID != 1000 || p.User.GID != 2000 || !slices.Equal(p.User.AdditionalGids, []uint32{3000}) || p.NoNewPrivileges || p.Terminal {
		t.Errorf("process: %+v", p)
	}
	if !slices.Equal(p.Capabilities.Bounding, defaultCapabilities) || !slices.Equal(p.Capabilities.Effective, defaultCapabilities) ||
		len(p.Capabilities.Inheritable) != 0 || len(p.Capabilities.Ambient) != 0 {
		t.Errorf("capabilities: %+v", p.Capabilities)
	}
	wantNS := []specs.LinuxNamespace{
		{Type: "pid"}, {Type: "mount"},
		{Type: "ipc", Path: sb.IPCNSPath}, {Type: "network", Path: sb.NetNSPath}, {Type: "uts", Path: sb.UTSNSPath},
	}
	if !slices.Equal(s.Linux.Namespaces, wantNS) {
		t.Errorf("namespaces %+v, want %+v", s.Linux.Namespaces, wantNS)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hosts", "/etc/resolv.conf"}; !slices.Equal(dests, want) {
		t.Errorf("mounts %q, want %q", dests, want)
	}
	if last := s.Mounts[len(s.Mounts)-1]; last.Type != "bind" || !slices.Equal(last.Options, []string{"rbind", "rprivate", "ro"}) {
		t.Errorf("read-only bind mount: %+v", last)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || r.CPU.Shares != nil || *r.Pids.Limit != 100 {
		t.Errorf("resources: %+v", r)
	}
	if len(r.Devices) != 1 || r.Devices[0].Allow {
		t.Errorf("devices: %+v; want deny all (runc adds its defaults)", r.Devices)
	}

	// A host-network sandbox leaves the network and UTS namespaces alone;
	// no resources means no limits.
	s = buildSpec(ContainerConfig{ID: "h", Args: []string{"x"}, Cwd: "/work"}, Sandbox{ID: "h", HostNetwork: true, IPCNSPath: "/i"}, "rootfs", "/kite/h")
	if want := []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "ipc", Path: "/i"}}; !slices.Equal(s.Linux.Namespaces, want) {
		t.Errorf("host network namespaces %+v", s.Linux.Namespaces)
	}
	if s.Process.Cwd != "/work" || s.Linux.Resources.Memory != nil || s.Linux.Resources.CPU != nil || s.Linux.Resources.Pids != nil {
		t.Errorf("host network spec: cwd %q resources %+v", s.Process.Cwd, s.Linux.Resources)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}
