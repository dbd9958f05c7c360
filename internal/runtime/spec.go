package runtime

import (
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ociVersion is what runc 1.1 (spec 1.0.2-dev) expects; the fields kite
// writes all exist in that version.
const ociVersion = "1.0.2"

// defaultCapabilities is Docker's (and containerd's) default set.
var defaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// Paths hidden and made read-only in /proc and /sys, as Docker does.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// standardMounts are every container's file systems besides its root.
// runc creates the standard device nodes (null, zero, full, random,
// urandom, tty, ptmx link) in the /dev tmpfs and allows them in the device
// cgroup.
func standardMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
}

// buildSpec renders a container's OCI config. rootfs is relative to the
// bundle; cgroupsPath is the container's cgroup. It is a pure function of
// its arguments.
func buildSpec(cfg ContainerConfig, sb Sandbox, rootfs, cgroupsPath string) *specs.Spec {
	cwd := cfg.Cwd
	if cwd == "" {
		cwd = "/"
	}
	caps := append([]string(nil), defaultCapabilities...)
	s := &specs.Spec{
		Version: ociVersion,
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			User:     specs.User{UID: cfg.UID, GID: cfg.GID, AdditionalGids: cfg.AdditionalGIDs},
			Terminal: cfg.TTY,
			Args:     cfg.Args,
			Env:      cfg.Env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			// Kubernetes' default (allowPrivilegeEscalation: true).
			NoNewPrivileges: false,
		},
		Mounts: standardMounts(),
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Resources: &specs.LinuxResources{
				// Deny every device; runc appends its default allow list.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces:    sandboxNamespaces(sb),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	for _, m := range cfg.Mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: path.Clean(m.Destination), Type: "bind", Source: m.Source, Options: opts})
	}
	if r := cfg.Resources; r != nil {
		lr := s.Linux.Resources
		if r.MemoryLimitBytes > 0 {
			lim := r.MemoryLimitBytes
			lr.Memory = &specs.LinuxMemory{Limit: &lim}
		}
		if r.CPUShares > 0 || r.CPUQuota > 0 {
			lr.CPU = &specs.LinuxCPU{}
			if r.CPUShares > 0 {
				shares := r.CPUShares
				lr.CPU.Shares = &shares
			}
			if r.CPUQuota > 0 {
				quota, period := r.CPUQuota, r.CPUPeriod
				if period == 0 {
					period = 100000
				}
				lr.CPU.Quota, lr.CPU.Period = &quota, &period
			}
		}
		if r.PidsLimit > 0 {
			lim := r.PidsLimit
			lr.Pids = &specs.LinuxPids{Limit: &lim}
		}
	}
	return s
}

// sandboxNamespaces gives a container its own PID and mount namespaces and
// the sandbox's network, UTS and IPC namespaces (by path). A HostNetwork
// sandbox has no network or UTS namespace: the container stays in the
// runtime's.
func sandboxNamespaces(sb Sandbox) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.IPCNamespace, Path: sb.IPCNSPath},
	}
	if sb.NetNSPath != "" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.NetNSPath})
	}
	if sb.UTSNSPath != "" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: sb.UTSNSPath})
	}
	return ns
}
