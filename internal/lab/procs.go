package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procRecord identifies a process the lab started: its PID and its start
// time (field 22 of /proc/<pid>/stat, clock ticks since boot), so that a
// recycled PID is never mistaken for it.
type procRecord struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	What  string `json:"what"`
}

// procStat reads a process's state letter, parent and start time.
func procStat(pid int) (state byte, ppid int, start uint64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name is in parentheses and may hold spaces: fields
	// start after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	start, _ = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], ppid, start, nil
}

func newProcRecord(pid int, what string) (procRecord, error) {
	_, _, start, err := procStat(pid)
	if err != nil {
		return procRecord{}, err
	}
	return procRecord{PID: pid, Start: start, What: what}, nil
}

// alive reports whether the recorded process still runs (a zombie does
// not count).
func (r procRecord) alive() bool {
	if r.PID <= 0 {
		return false
	}
	state, _, start, err := procStat(r.PID)
	return err == nil && start == r.Start && state != 'Z' && state != 'X'
}

func writeProcRecord(path string, r procRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

func readProcRecord(path string) (procRecord, error) {
	var r procRecord
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(data, &r)
}

// Process records in <state-dir>/run.
func (cl *Cluster) supervisorRecord() string { return filepath.Join(cl.runDir(), "supervisor.json") }
func (cl *Cluster) childRecord(node, role string) string {
	return filepath.Join(cl.runDir(), node+"-"+role+".json")
}

// Supervisor returns the running supervisor's record, if it runs.
func (cl *Cluster) supervisor() (procRecord, bool) {
	r, err := readProcRecord(cl.supervisorRecord())
	return r, err == nil && r.alive()
}

// running returns the record of a supervised process, if it runs.
func (cl *Cluster) running(node, role string) (procRecord, bool) {
	r, err := readProcRecord(cl.childRecord(node, role))
	return r, err == nil && r.alive()
}

// stopProcess sends SIGTERM, waits up to grace for the process to go,
// then sends SIGKILL and waits a little more.
func stopProcess(r procRecord, grace time.Duration) error {
	if !r.alive() {
		return nil
	}
	_ = syscall.Kill(r.PID, syscall.SIGTERM)
	if waitGone([]procRecord{r}, grace) {
		return nil
	}
	_ = syscall.Kill(r.PID, syscall.SIGKILL)
	if waitGone([]procRecord{r}, 2*time.Second) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", r.What, r.PID)
}

// waitGone polls until none of the processes is alive or timeout passes.
func waitGone(rs []procRecord, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		left := false
		for _, r := range rs {
			if r.alive() {
				left = true
			}
		}
		if !left {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nsID identifies a namespace by the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func nsOf(path string) (nsID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsID{}, false
	}
	return nsID{uint64(st.Dev), st.Ino}, true
}

// processesIn lists the processes whose network or mount namespace is one
// of nss, and all their descendants: a node's agent and server, the
// container shims they daemonized, and the containers below those (which
// have namespaces of their own).
func processesIn(nss map[nsID]bool) []procRecord {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	var roots []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		_, ppid, _, err := procStat(pid)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		for _, kind := range []string{"net", "mnt"} {
			if id, ok := nsOf(fmt.Sprintf("/proc/%d/ns/%s", pid, kind)); ok && nss[id] {
				roots = append(roots, pid)
				break
			}
		}
	}
	seen := map[int]bool{}
	var out []procRecord
	for len(roots) > 0 {
		pid := roots[0]
		roots = roots[1:]
		if seen[pid] || pid == os.Getpid() {
			continue
		}
		seen[pid] = true
		if r, err := newProcRecord(pid, "process "+strconv.Itoa(pid)); err == nil {
			out = append(out, r)
		}
		roots = append(roots, children[pid]...)
	}
	return out
}

// killAll sends SIGTERM to every process, waits up to grace, then SIGKILLs
// what is left (with no grace: SIGKILL at once).
func killAll(rs []procRecord, grace time.Duration) error {
	if len(rs) == 0 {
		return nil
	}
	if grace > 0 {
		for _, r := range rs {
			if r.alive() {
				_ = syscall.Kill(r.PID, syscall.SIGTERM)
			}
		}
		if waitGone(rs, grace) {
			return nil
		}
	}
	for _, r := range rs {
		if r.alive() {
			_ = syscall.Kill(r.PID, syscall.SIGKILL)
		}
	}
	if waitGone(rs, 3*time.Second) {
		return nil
	}
	var left []string
	for _, r := range rs {
		if r.alive() {
			left = append(left, strconv.Itoa(r.PID))
		}
	}
	return fmt.Errorf("processes %s did not exit after SIGKILL", strings.Join(left, ", "))
}

// removeIfExists removes a file, ignoring its absence.
func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
