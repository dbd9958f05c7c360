package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"kite/internal/testutil"
)

// Conventions: every benchmark runs inside a private network namespace
// (TestMain) with only loopback up; servers listen on 127.0.0.1 at a free
// port and keep their state in a b.TempDir().
func TestMain(m *testing.M) { testutil.MainInNetns(m) }

var machineOnce sync.Once

// printMachine prints, once per run, what the figures were measured on.
func printMachine(b *testing.B, bin string) {
	b.Helper()
	machineOnce.Do(func() {
		version, err := exec.Command(bin, "version").Output()
		if err != nil {
			b.Fatalf("%s version: %v", bin, err)
		}
		fmt.Printf("\nmachine\n")
		fmt.Printf("  cpu          %s\n", cpuModel())
		fmt.Printf("  cores        %d online (GOMAXPROCS %d)\n", runtime.NumCPU(), runtime.GOMAXPROCS(0))
		fmt.Printf("  memory       %s\n", memTotal())
		fmt.Printf("  kernel       %s\n", readTrim("/proc/sys/kernel/osrelease"))
		fmt.Printf("  go           %s %s/%s (benchmark client)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		fmt.Printf("  kite         %s", version)
		fmt.Printf("  binary       %s (run from a copy)\n", kiteSource())
		fmt.Printf("  state dir fs %s (%s; etcd fsyncs there)\n", fsType(os.TempDir()), os.TempDir())
		fmt.Printf("  load average %s (at start; the machine is shared)\n\n", loadAverage())
	})
}

func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(data))
}

// cpuModel is /proc/cpuinfo's first "model name".
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb uint64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

func loadAverage() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// fsType names the filesystem holding dir, since etcd's fsync cost depends
// on it.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	names := map[int64]string{0xEF53: "ext4", 0x01021994: "tmpfs", 0x794c7630: "overlayfs", 0x58465342: "xfs", 0x9123683E: "btrfs"}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "type 0x%x", st.Type)
	return buf.String()
}

// once fails a benchmark asked to repeat: each measures a fixed batch and
// its own objects, so b.N other than 1 would measure nothing sensible.
func once(b *testing.B) {
	b.Helper()
	if b.N != 1 {
		b.Fatalf("b.N = %d: these benchmarks measure fixed batches; run them with -benchtime 1x (as `make bench` does)", b.N)
	}
}
