package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hostState is what a runtime could leak: mounts, processes (shims and
// processes in the runtime's cgroups), runc state, files and cgroups.
type hostState struct {
	Mounts    []string
	Processes []string
	RuncState []string
	Files     []string
	Cgroups   []string
}

func snapshot(t *testing.T, rt *Runtime) hostState {
	t.Helper()
	var s hostState
	mps, err := mountPoints()
	if err != nil {
		t.Fatal(err)
	}
	s.Mounts = mps
	slices.Sort(s.Mounts)
	// Other test packages run at the same time, each in namespaces of its
	// own (MainInNetns), some with runtimes and shims of their own: only
	// shims in this test's network namespace are this runtime's.
	ownNet, _ := os.Readlink("/proc/self/ns/net")
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		netns, _ := os.Readlink(filepath.Join(p, "ns", "net"))
		if (args[0] == shimArgv0 && netns == ownNet) || strings.Contains(string(cg), rt.cfg.CgroupParent+"/") {
			s.Processes = append(s.Processes, fmt.Sprintf("%s %q", filepath.Base(p), args))
		}
	}
	s.RuncState = dirNames(rt.cfg.RuncRoot)
	for _, d := range []string{rt.containersDir(), rt.sandboxesDir(), filepath.Join(rt.cfg.RunDir, "netns"),
		filepath.Join(rt.cfg.RunDir, "utsns"), filepath.Join(rt.cfg.RunDir, "ipcns"), filepath.Join(rt.cfg.RunDir, "exec")} {
		for _, n := range dirNames(d) {
			s.Files = append(s.Files, filepath.Join(d, n))
		}
	}
	for _, d := range cgroupDirs(rt.cfg.CgroupParent) {
		for _, n := range dirNames(d) {
			if fi, err := os.Stat(filepath.Join(d, n)); err == nil && fi.IsDir() {
				s.Cgroups = append(s.Cgroups, filepath.Join(d, n))
			}
		}
	}
	return s
}

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// checkNoLeak compares a snapshot with an earlier one.
func checkNoLeak(t *testing.T, rt *Runtime, before hostState) {
	t.Helper()
	after := snapshot(t, rt)
	if !slices.Equal(before.Mounts, after.Mounts) {
		t.Errorf("mounts differ:\nbefore %q\nafter  %q", before.Mounts, after.Mounts)
	}
	for _, c := range []struct {
		what          string
		before, after []string
	}{
		{"processes", before.Processes, after.Processes},
		{"runc state", before.RuncState, after.RuncState},
		{"files", before.Files, after.Files},
		{"cgroups", before.Cgroups, after.Cgroups},
	} {
		if !slices.Equal(c.before, c.after) {
			t.Errorf("%s differ:\nbefore %q\nafter  %q", c.what, c.before, c.after)
		}
	}
}
