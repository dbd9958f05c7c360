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
	var mem []procMemory
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
			mem = memoryOf(bin)
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
	var rss, pss int64
	roles := map[string][]procMemory{}
	var order []string
	for _, m := range mem {
		rss += m.rss
		pss += m.pss
		if roles[m.role] == nil {
			order = append(order, m.role)
		}
		roles[m.role] = append(roles[m.role], m)
	}
	slices.Sort(order)
	b.ReportMetric(float64(rss)/1024, "lab-rss-MiB")
	b.ReportMetric(float64(pss)/1024, "lab-pss-MiB")
	if agents := roles["agent"]; len(agents) > 0 {
		slices.SortFunc(agents, func(x, y procMemory) int { return int(x.rss - y.rss) })
		b.ReportMetric(float64(agents[len(agents)/2].rss)/1024, "agent-rss-MiB")
		b.ReportMetric(float64(agents[len(agents)/2].anon)/1024, "agent-anon-MiB")
	}
	fmt.Printf("\nkite up --nodes 3 (to every node Ready, then to cluster DNS available) and kite down --purge, %d runs\n", runs)
	fmt.Printf("                   median      min      max\n")
	fmt.Printf("    nodes Ready  %8s %8s %8s\n", readys[runs/2].Round(time.Millisecond), readys[0].Round(time.Millisecond), readys[runs-1].Round(time.Millisecond))
	fmt.Printf("    up with DNS  %8s %8s %8s\n", ups[runs/2].Round(time.Millisecond), ups[0].Round(time.Millisecond), ups[runs-1].Round(time.Millisecond))
	fmt.Printf("    down --purge %8s %8s %8s\n", downs[runs/2].Round(time.Millisecond), downs[0].Round(time.Millisecond), downs[runs-1].Round(time.Millisecond))
	fmt.Printf("idle 3-node lab: %d kite processes, RSS summed %.0f MiB, PSS summed %.0f MiB\n", len(mem), float64(rss)/1024, float64(pss)/1024)
	fmt.Printf("    %-12s %5s %12s %12s %12s\n", "process", "count", "RSS each", "anon each", "PSS summed")
	for _, role := range order {
		ms := roles[role]
		var lo, hi, alo, ahi, p int64 = ms[0].rss, ms[0].rss, ms[0].anon, ms[0].anon, 0
		for _, m := range ms {
			lo, hi, alo, ahi, p = min(lo, m.rss), max(hi, m.rss), min(alo, m.anon), max(ahi, m.anon), p+m.pss
		}
		fmt.Printf("    %-12s %5d %12s %12s %8.0f MiB\n", role, len(ms), mibRange(lo, hi), mibRange(alo, ahi), float64(p)/1024)
	}
	fmt.Printf("  RSS counts the binary's shared pages once per process; PSS divides them among the processes sharing them;\n")
	fmt.Printf("  anon (RssAnon) is each process's own memory.\n")
}

// procMemory is one process's memory, in KiB, and what it is (kite's
// subcommand, or "supervisor").
type procMemory struct {
	role           string
	rss, anon, pss int64
}

func mibRange(lo, hi int64) string {
	if lo == hi {
		return fmt.Sprintf("%.0f MiB", float64(lo)/1024)
	}
	return fmt.Sprintf("%.0f–%.0f MiB", float64(lo)/1024, float64(hi)/1024)
}

// memoryOf reads VmRSS, RssAnon and Pss of the lab's processes: those
// running bin (server, agents, lb, container shims), the supervisor (this
// test binary re-executed as the lab's helper), and the kite dns pods
// (the system image's /kite, children of this lab's shims: other labs on
// the machine have their own).
func memoryOf(bin string) []procMemory {
	self, _ := os.Executable()
	type proc struct {
		pid, ppid int
		exe, role string
	}
	var found []proc
	shims := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != bin && exe != self && exe != "/kite" {
			continue
		}
		args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		argv := strings.Split(string(args), "\x00")
		role := "kite"
		switch {
		case exe == self || filepath.Base(argv[0]) == "kite-lab":
			role = "supervisor"
		case filepath.Base(argv[0]) == "kite-runtime-shim":
			role = "shim"
			shims[pid] = exe == bin
		case len(argv) > 1:
			role = argv[1]
		}
		ppid := int(procField(fmt.Sprintf("/proc/%d/status", pid), "PPid:"))
		found = append(found, proc{pid, ppid, exe, role})
	}
	var out []procMemory
	for _, p := range found {
		if p.exe == "/kite" && !shims[p.ppid] {
			continue // another lab's pod
		}
		out = append(out, procMemory{
			role: p.role,
			rss:  procField(fmt.Sprintf("/proc/%d/status", p.pid), "VmRSS:"),
			anon: procField(fmt.Sprintf("/proc/%d/status", p.pid), "RssAnon:"),
			pss:  procField(fmt.Sprintf("/proc/%d/smaps_rollup", p.pid), "Pss:"),
		})
	}
	return out
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
