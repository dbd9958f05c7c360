package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// kubectlTimeout bounds one kubectl command.
const kubectlTimeout = 60 * time.Second

// kubectlVersion is one kubectl binary the suite runs its scenarios with.
type kubectlVersion struct {
	name string   // subtest name: "kite", "1.27", ...
	argv []string // command prefix: the binary (and "kubectl" for kite)
	// client is the prefix `kubectl version --client` must report.
	client string
	// missing, when set, says why this version is skipped.
	missing string
}

// Paths of the installed kubectl binaries the issue names.
const (
	gcloudKubectlDir = "/usr/lib/google-cloud-sdk/bin"
	// debianKubectlDir is where get-kubectl-1.20.sh unpacks Debian's
	// kubernetes-client (override with $KITE_KUBECTL_120_DIR).
	debianKubectlDir = "/var/cache/kite-test/kubectl-1.20"
)

// kubectlVersions lists the kubectls to test: the compiled-in one always;
// 1.27 and 1.33 from the Google Cloud SDK (required by the issue: a missing
// one is skipped with a message saying so); 1.20 if get-kubectl-1.20.sh
// has unpacked it.
func kubectlVersions(t *testing.T) []kubectlVersion {
	vs := []kubectlVersion{{name: "kite", argv: []string{kiteBin(t), "kubectl"}, client: "v1.37."}}
	for _, minor := range []string{"27", "33"} {
		path := filepath.Join(gcloudKubectlDir, "kubectl.1."+minor)
		v := kubectlVersion{name: "1." + minor, argv: []string{path}, client: "v1." + minor + "."}
		if _, err := os.Stat(path); err != nil {
			v.missing = path + " is missing (install the Google Cloud SDK kubectl components)"
		}
		vs = append(vs, v)
	}
	dir := os.Getenv("KITE_KUBECTL_120_DIR")
	if dir == "" {
		dir = debianKubectlDir
	}
	path := filepath.Join(dir, "usr", "bin", "kubectl")
	v := kubectlVersion{name: "1.20", argv: []string{path}, client: "v1.20."}
	if _, err := os.Stat(path); err != nil {
		v.missing = path + " is missing (run test/e2e/get-kubectl-1.20.sh outside the test namespace to fetch it)"
	}
	return append(vs, v)
}

// kubectl runs one kubectl version against one server, in one namespace.
type kubectl struct {
	v    kubectlVersion
	env  []string // KUBECONFIG and a private HOME (discovery cache)
	ns   string
	home string
	// record, when set, is told every command run() ran and its output
	// (the walkthrough's transcript for docs/walkthrough.md).
	record func(cmd, out string)
}

func newKubectl(t *testing.T, v kubectlVersion, s *server, ns string) *kubectl {
	return kubectlFor(t, v, s.kubeconfig(), ns)
}

// kubectlFor is kubectl version v with kubeconfig, in namespace ns, with
// a HOME of its own (discovery cache).
func kubectlFor(t *testing.T, v kubectlVersion, kubeconfig, ns string) *kubectl {
	home := t.TempDir()
	env := append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+home)
	return &kubectl{v: v, env: env, ns: ns, home: home}
}

// result is what one kubectl command did.
type result struct {
	args           []string
	stdout, stderr string
	err            error
}

// cmd builds a kubectl command; every command gets --namespace (kubectl
// ignores it where it does not apply).
func (k *kubectl) cmd(ctx context.Context, extraEnv []string, args ...string) *exec.Cmd {
	argv := append(append([]string{}, k.v.argv...), "--namespace="+k.ns)
	argv = append(argv, args...)
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = append(append([]string{}, k.env...), extraEnv...)
	return c
}

// try runs kubectl and returns what happened, failing nothing.
func (k *kubectl) try(t *testing.T, extraEnv []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	c := k.cmd(ctx, extraEnv, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	err := c.Run()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return result{args: args, stdout: out.String(), stderr: errb.String(), err: err}
}

// run runs kubectl and fails the test if it does not succeed.
func (k *kubectl) run(t *testing.T, args ...string) string {
	t.Helper()
	r := k.try(t, nil, "", args...)
	if r.err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	if r.stderr != "" {
		// Warnings (version skew, deprecations) are shown under -v.
		t.Logf("kubectl %s: stderr:\n%s", strings.Join(args, " "), r.stderr)
	}
	if k.record != nil {
		k.record("kubectl "+shellJoin(args), r.stdout)
	}
	return r.stdout
}

// shellJoin quotes arguments for display as a shell command: an argument
// of only safe characters stays as it is, any other is single-quoted.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if shellSafe.MatchString(a) {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// fail runs kubectl, expects it to fail, and returns its stderr.
func (k *kubectl) fail(t *testing.T, args ...string) string {
	t.Helper()
	r := k.try(t, nil, "", args...)
	if r.err == nil {
		t.Fatalf("kubectl %s succeeded, want an error\nstdout:\n%s", strings.Join(args, " "), r.stdout)
	}
	return r.stderr
}

// wantLines asserts kubectl's stdout is exactly these lines.
func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	if g := strings.TrimRight(got, "\n"); g != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", g, strings.Join(want, "\n"))
	}
}

// wantMatch asserts the text matches every regular expression.
func wantMatch(t *testing.T, got string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output does not match %q:\n%s", re, got)
		}
	}
}

// watcher is a kubectl running in the background (get -w) whose stdout
// lines arrive on a channel.
type watcher struct {
	cmd    *exec.Cmd
	lines  chan string
	cancel context.CancelFunc
	stderr bytes.Buffer
}

// watch starts kubectl in the background; it is killed when the test ends.
func (k *kubectl) watch(t *testing.T, args ...string) *watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	w := &watcher{lines: make(chan string, 100), cancel: cancel}
	w.cmd = k.cmd(ctx, nil, args...)
	w.cmd.Stderr = &w.stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start kubectl %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(w.stop)
	return w
}

// next returns the next line that satisfies match, failing after timeout.
func (w *watcher) next(t *testing.T, timeout time.Duration, what string, match func(fields []string) bool) []string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var seen []string
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				t.Fatalf("kubectl %s ended before %s; lines:\n%s\nstderr:\n%s", strings.Join(w.cmd.Args, " "), what, strings.Join(seen, "\n"), w.stderr.String())
			}
			seen = append(seen, line)
			if f := strings.Fields(line); match(f) {
				return f
			}
		case <-deadline.C:
			t.Fatalf("no %s within %v; lines:\n%s", what, timeout, strings.Join(seen, "\n"))
		}
	}
}

// stop kills the background kubectl (a process this test started) and
// waits for it.
func (w *watcher) stop() {
	if w.cmd.Process != nil && w.cmd.ProcessState == nil {
		w.cmd.Process.Kill()
		for range w.lines {
		}
		w.cmd.Wait()
	}
	w.cancel()
}

// table is one block of kubectl's column output. kubectl aligns columns
// with a tabwriter, so each cell starts at its header's offset; header
// names may contain single spaces ("NOMINATED NODE"), columns are
// separated by at least two.
type table struct {
	cols []string
	rows []map[string]string
}

var columnSep = regexp.MustCompile(`\S+( \S+)*`)

// parseTables splits kubectl output into its blocks (get a,b,c prints one
// per kind, separated by blank lines) and parses each.
func parseTables(out string) []table {
	var tables []table
	for _, block := range strings.Split(strings.TrimRight(out, "\n"), "\n\n") {
		lines := strings.Split(block, "\n")
		if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
			continue
		}
		header := lines[0]
		locs := columnSep.FindAllStringIndex(header, -1)
		var tb table
		for _, l := range locs {
			tb.cols = append(tb.cols, header[l[0]:l[1]])
		}
		for _, line := range lines[1:] {
			row := map[string]string{}
			for i, l := range locs {
				end := len(line)
				if i+1 < len(locs) && locs[i+1][0] < end {
					end = locs[i+1][0]
				}
				if l[0] < end {
					row[tb.cols[i]] = strings.TrimSpace(line[l[0]:end])
				}
			}
			tb.rows = append(tb.rows, row)
		}
		tables = append(tables, tb)
	}
	return tables
}

// parseTable parses output that holds exactly one table.
func parseTable(t *testing.T, out string) table {
	t.Helper()
	tables := parseTables(out)
	if len(tables) != 1 {
		t.Fatalf("want one table, got %d in:\n%s", len(tables), out)
	}
	return tables[0]
}

// wantCols asserts a table's header.
func (tb table) wantCols(t *testing.T, cols ...string) {
	t.Helper()
	if strings.Join(tb.cols, "|") != strings.Join(cols, "|") {
		t.Errorf("columns %q, want %q", tb.cols, cols)
	}
}

// row returns the row whose NAME cell is name.
func (tb table) row(t *testing.T, name string) map[string]string {
	t.Helper()
	for _, r := range tb.rows {
		if r["NAME"] == name {
			return r
		}
	}
	t.Fatalf("no row named %q in table %q with rows %v", name, tb.cols, tb.rows)
	return nil
}

// wantRow asserts the cells of the row named name.
func (tb table) wantRow(t *testing.T, name string, cells map[string]string) {
	t.Helper()
	r := tb.row(t, name)
	for col, want := range cells {
		if got, ok := r[col]; !ok || got != want {
			t.Errorf("row %q column %s = %q, want %q (row %v)", name, col, got, want, r)
		}
	}
}
