package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kite/internal/lab"
)

// BenchmarkLab measures `kite up --nodes 3` (to every node Ready, and on
// to cluster DNS available, where `kite up` returns) and
// `kite down --purge`, five times each, and the memory of an idle 3-node
// lab. The lab lives in this benchmark's private namespace (TestMain).
func BenchmarkLab(b *testing.B) {
	once(b)
	bin := kiteBinary(b)
	printMachine(b, bin)
	// `ip netns` pins of the lab's nodes stay in this private namespace.
	if err := unix.Mount("tmpfs", "/run/netns", "tmpfs", 0, "mode=0755"); err != nil {
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			b.Fatal(err)
		}
		if err := unix.Mount("tmpfs", "/run/netns", "tmpfs", 0, "mode=0755"); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	const runs = 5
	var ups, readys, downs []time.Duration
	readyLine := regexp.MustCompile(`node\(s\) Ready \([^,]+, at ([^)]+)\)`)
	var rss, pss int64
	var procs int
	for i := 0; i < runs; i++ {
		dir := b.TempDir()
		cfg := lab.Config{Name: "kite", Nodes: 3, StateDir: filepath.Join(dir, "lab"), Binary: bin,
			Kubeconfig: filepath.Join(dir, "kubeconfig"), Wait: time.Minute}
		var out bytes.Buffer
		cfg.Out = &out
		start := time.Now()
		if err := lab.Up(ctx, cfg); err != nil {
			b.Fatalf("kite up: %v\n%s", err, out.String())
		}
		ups = append(ups, time.Since(start))
		m := readyLine.FindStringSubmatch(out.String())
		if m == nil {
			b.Fatalf("kite up printed no 'node(s) Ready' line:\n%s", out.String())
		}
		d, err := time.ParseDuration(m[1])
		if err != nil {
			b.Fatalf("kite up: nodes Ready at %q: %v", m[1], err)
		}
		readys = append(readys, d)
		if i == runs-1 {
			// Idle: let start-up settle before reading memory.
			time.Sleep(5 * time.Second)
			procs, rss, pss = memoryOf(bin)
		}
		cfg.Purge = true
		start = time.Now()
		if err := lab.Down(ctx, cfg); err != nil {
			b.Fatalf("kite down: %v", err)
		}
		downs = append(downs, time.Since(start))
	}
	slices.Sort(ups)
	slices.Sort(readys)
	slices.Sort(downs)
	b.ReportMetric(float64(readys[runs/2].Milliseconds()), "nodes-ready-median-ms")
	b.ReportMetric(float64(ups[runs/2].Milliseconds()), "up-median-ms")
	b.ReportMetric(float64(downs[runs/2].Milliseconds()), "down-median-ms")
	b.ReportMetric(float64(rss)/1024, "lab-rss-MiB")
	b.ReportMetric(float64(pss)/1024, "lab-pss-MiB")
	fmt.Printf("\nkite up --nodes 3 (to every node Ready, then to cluster DNS available) and kite down --purge, %d runs\n", runs)
	fmt.Printf("                   median      min      max\n")
	fmt.Printf("    nodes Ready  %8s %8s %8s\n", readys[runs/2].Round(time.Millisecond), readys[0].Round(time.Millisecond), readys[runs-1].Round(time.Millisecond))
	fmt.Printf("    up with DNS  %8s %8s %8s\n", ups[runs/2].Round(time.Millisecond), ups[0].Round(time.Millisecond), ups[runs-1].Round(time.Millisecond))
	fmt.Printf("    down --purge %8s %8s %8s\n", downs[runs/2].Round(time.Millisecond), downs[0].Round(time.Millisecond), downs[runs-1].Round(time.Millisecond))
	fmt.Printf("idle 3-node lab: %d kite processes, RSS summed %.0f MiB, PSS summed %.0f MiB\n", procs, float64(rss)/1024, float64(pss)/1024)
	fmt.Printf("  RSS counts the binary's shared pages once per process; PSS divides them among the processes sharing them.\n")
}

// memoryOf sums VmRSS and Pss (KiB) over the lab's processes: those
// running bin, and the supervisor (this test binary re-executed as the
// lab's helper).
func memoryOf(bin string) (n int, rss, pss int64) {
	self, _ := os.Executable()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || (exe != bin && (exe != self || pid == os.Getpid())) {
			continue
		}
		n++
		rss += procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		pss += procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	}
	return n, rss, pss
}

// procField reads "Key:   123 kB" from a /proc file.
func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				v, _ := strconv.ParseInt(fs[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
