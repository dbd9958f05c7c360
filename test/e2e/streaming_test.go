package e2e

// Issue 5's end-to-end tier: kubectl exec (with a terminal), logs,
// port-forward, cp, run -i and attach against real pods of a lab cluster, for every kubectl
// version (each speaks its own protocols: SPDY up to 1.29, WebSocket v5 for
// exec and SPDY tunnelled in WebSocket for port-forward from 1.31).

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of the port-forward load (S2).
const (
	forwardSequential = 200
	forwardConcurrent = 50
)

func TestStreaming(t *testing.T) {
	l := startLab(t, 2)
	vs := kubectlVersions(t)
	k := l.kubectl(t, vs[0], "default")
	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=2")
	k.run(t, "expose", "deployment", "kuard", "--port=80", "--target-port=8080")
	k.run(t, "run", "counter", "--image=busybox", "--", "sh", "-c",
		`i=0; while [ $i -lt 6000 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done`)
	k.run(t, "run", "crasher", "--image=busybox", "--", "sh", "-c", `echo "run $RANDOM"; sleep 1; exit 1`)
	// A pod whose port 9999 accepts connections and closes them at once.
	apply(t, k, `apiVersion: v1
kind: Pod
metadata:
  name: closer
spec:
  containers:
  - name: kuard
    image: `+kuardImage1+`
  - name: closer
    image: busybox
    command: ["nc", "-ll", "-p", "9999", "-e", "true"]
`)
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
	k.run(t, "wait", "--for=condition=Ready", "pod/counter", "pod/closer", "--timeout=60s")
	kuards := strings.Fields(k.run(t, "get", "pods", "-l", "app=kuard", "-o", "jsonpath={.items[*].metadata.name}"))
	for _, p := range append(kuards, "closer") {
		waitServing(t, k, p)
	}
	pod := kuards[0]
	podIP := k.run(t, "get", "pod", pod, "-o", "jsonpath={.status.podIP}")

	t.Run("agent refuses clients without the API server's certificate", func(t *testing.T) {
		ip := k.run(t, "get", "node", "kite-worker", "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
		port := k.run(t, "get", "node", "kite-worker", "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}")
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get("https://" + ip + ":" + port + "/pods")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /pods without credentials: %d %s, want 401", resp.StatusCode, body)
		}
		// Through the API server, nodes/proxy reaches the same agent.
		wantLines(t, k.run(t, "get", "--raw", "/api/v1/nodes/kite-worker/proxy/healthz"), "ok")
	})

	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			if v.missing != "" {
				t.Skip(v.missing)
			}
			k := l.kubectl(t, v, "default")
			t.Run("exec", func(t *testing.T) { stepExec(t, k, pod) })
			t.Run("exec -it ash", func(t *testing.T) { stepExecTTY(t, k, pod, podIP) })
			t.Run("logs", func(t *testing.T) { stepLogs(t, k) })
			t.Run("port-forward", func(t *testing.T) { stepPortForward(t, k, "pod/"+pod, "8080", "8080") })
			// kubectl resolves the Service's port to the pod's.
			t.Run("port-forward svc", func(t *testing.T) { stepPortForward(t, k, "svc/kuard", "80", "8080") })
			t.Run("port-forward survives the pod closing connections", func(t *testing.T) { stepForwardPodCloses(t, k) })
			t.Run("cp", func(t *testing.T) { stepCopy(t, k, pod) })
			t.Run("run -i --rm", func(t *testing.T) { stepRunAttach(t, k) })
			t.Run("attach -i", func(t *testing.T) { stepAttach(t, k) })
			t.Run("run -it --rm sh", func(t *testing.T) { stepRunTTY(t, k) })
		})
	}
	t.Run("port-forward to a pod that dies", func(t *testing.T) { stepForwardPodDies(t, l.kubectl(t, vs[0], "default")) })
}

// stepExec: exec without a terminal prints the command's output and
// returns its exit code; stdin reaches the command.
func stepExec(t *testing.T, k *kubectl, pod string) {
	wantLines(t, k.run(t, "exec", pod, "--", "hostname"), pod)
	r := k.try(t, nil, "", "exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("exec … exit 3: %v, want exit code 3\nstderr: %s", r.err, r.stderr)
	}
	if r.stdout != "out\n" || !strings.Contains(r.stderr, "err\n") || !strings.Contains(r.stderr, "command terminated with exit code 3") {
		t.Errorf("exec … exit 3: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = k.try(t, nil, "hello from stdin\n", "exec", "-i", pod, "--", "cat")
	if r.err != nil || r.stdout != "hello from stdin\n" {
		t.Errorf("exec -i cat: %v, stdout %q stderr %q", r.err, r.stdout, r.stderr)
	}
}

// stepExecTTY: `kubectl exec -it <pod> -- ash` on a pseudo-terminal (S3):
// hostname is the pod's name, ifconfig shows eth0 with the pod's IP, and lo.
func stepExecTTY(t *testing.T, k *kubectl, pod, podIP string) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := k.cmd(ctx, []string{"TERM=dumb"}, "exec", "-it", pod, "--", "ash")
	out, err := runOnTerminal(ctx, cmd, "hostname\nifconfig\nexit 0\n")
	if err != nil {
		t.Fatalf("exec -it ash: %v\noutput:\n%s", err, out)
	}
	for _, re := range []string{`(?m)^` + regexp.QuoteMeta(pod) + `\r?$`, `(?m)^eth0\s`, `inet addr:` + regexp.QuoteMeta(podIP) + `\s`, `(?m)^lo\s`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("exec -it ash: no match for %s in:\n%s", re, out)
		}
	}
}

// runOnTerminal runs cmd with a new pseudo-terminal as its controlling
// terminal and stdio, types input line by line (each once the previous
// output settled a little), and returns everything it printed.
func runOnTerminal(ctx context.Context, cmd *exec.Cmd, input string) (string, error) {
	return runOnTerminalAfter(ctx, cmd, "# ", input)
}

// runOnTerminalAfter is runOnTerminal typing once cmd printed ready
// rather than the shell's prompt.
func runOnTerminalAfter(ctx context.Context, cmd *exec.Cmd, ready, input string) (string, error) {
	master, slave, err := openPTY()
	if err != nil {
		return "", err
	}
	defer master.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		slave.Close()
		return "", err
	}
	slave.Close()
	var mu sync.Mutex
	var out strings.Builder
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return // EIO once the last holder of the terminal exits
			}
		}
	}()
	snapshot := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	// Wait for the shell's prompt (or kubectl's word) before typing.
	if err := waitOutput(ctx, snapshot, func(s string) bool { return strings.Contains(s, ready) }); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return snapshot(), fmt.Errorf("no prompt: %w", err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(input, "\n"), "\n")
	for i, line := range lines {
		before := strings.Count(snapshot(), "# ")
		if _, err := master.Write([]byte(strings.TrimSuffix(line, "\n") + "\n")); err != nil {
			break
		}
		// The next prompt before the next line; the last one ends the
		// shell.
		if i < len(lines)-1 {
			waitOutput(ctx, snapshot, func(s string) bool { return strings.Count(s, "# ") > before })
		}
	}
	werr := cmd.Wait()
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
	}
	return snapshot(), werr
}

// waitOutput polls the output until cond holds or ctx ends.
func waitOutput(ctx context.Context, snapshot func() string, cond func(string) bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond(snapshot()) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// openPTY opens a new pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// stepLogs: logs --tail, logs -f as lines arrive, --previous after a
// restart, --timestamps.
func stepLogs(t *testing.T, k *kubectl) {
	lines := strings.Split(strings.TrimSuffix(k.run(t, "logs", "counter", "--tail=2"), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "line ") || !strings.HasPrefix(lines[1], "line ") {
		t.Errorf("logs --tail=2: %q, want two 'line N'", lines)
	}
	wantMatch(t, k.run(t, "logs", "counter", "--tail=1", "--timestamps"), `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line \d+\n$`)

	// -f: new lines keep arriving.
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := k.cmd(ctx, nil, "logs", "-f", "counter", "--tail=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var seen []string
	for len(seen) < 5 && sc.Scan() {
		seen = append(seen, sc.Text())
	}
	cancel()
	cmd.Wait()
	var first, last int
	if len(seen) == 5 {
		fmt.Sscanf(seen[0], "line %d", &first)
		fmt.Sscanf(seen[4], "line %d", &last)
	}
	if len(seen) != 5 || last != first+4 {
		t.Errorf("logs -f: got %q, want five consecutive lines as they are written", seen)
	}

	// --previous: the instance before the restart.
	waitFor(t, 60*time.Second, "crasher restarted", func() error {
		if n := k.run(t, "get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); n == "0" || n == "" {
			return fmt.Errorf("restartCount %q", n)
		}
		return nil
	})
	wantMatch(t, k.run(t, "logs", "crasher", "--previous"), `^run \d+\n$`)
	if r := k.try(t, nil, "", "logs", "counter", "--previous"); r.err == nil || !strings.Contains(r.stderr, `previous terminated container "counter" in pod "counter" not found`) {
		t.Errorf("logs --previous of a container that never restarted: %v %q", r.err, r.stderr)
	}
}

// portForward runs `kubectl port-forward TARGET :PORT` and returns the
// local port it chose (kubectl reports the pod's port, podPort); the
// forward ends with the test.
func portForward(t *testing.T, k *kubectl, target, port, podPort string) (local string, cmd *exec.Cmd, done <-chan error, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd = k.cmd(ctx, nil, "port-forward", target, ":"+port)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	exited := make(chan struct{})
	lines := make(chan string, 16)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		ch <- cmd.Wait()
	}()
	t.Cleanup(func() { cancel(); <-exited })
	re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> ` + podPort + `$`)
	deadline := time.After(kubectlTimeout)
	for {
		select {
		case l := <-lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1], cmd, ch, stderr
			}
		case err := <-ch:
			t.Fatalf("kubectl port-forward %s ended: %v\n%s", target, err, stderr.String())
		case <-deadline:
			t.Fatalf("kubectl port-forward %s: no 'Forwarding from' line\n%s", target, stderr.String())
		}
	}
}

// stepPortForward: 200 sequential and 50 concurrent requests through the
// forward all succeed (S2); a connection the pod resets does not end it.
func stepPortForward(t *testing.T, k *kubectl, target, port, podPort string) {
	local, _, done, stderr := portForward(t, k, target, port, podPort)
	base := "http://127.0.0.1:" + local
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) error {
		resp, err := c.Get(base + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
	failed := 0
	for i := 0; i < forwardSequential; i++ {
		if err := get("/healthy"); err != nil {
			failed++
			t.Logf("sequential request %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, forwardConcurrent)
	for i := 0; i < forwardConcurrent; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := get("/env/api"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		failed++
		t.Logf("concurrent request: %v", err)
	}
	if failed > 0 {
		t.Errorf("port-forward %s: %d of %d requests failed\n%s", target, failed, forwardSequential+forwardConcurrent, stderr.String())
	}
	// A connection the client resets mid-request, then a normal request.
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+local, 10*time.Second); err == nil {
		conn.Write([]byte("GET /env/api HTTP/1.1\r\nHost: x\r\n"))
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}
	if err := get("/healthy"); err != nil {
		t.Errorf("after a reset connection: %v\n%s", err, stderr.String())
	}
	select {
	case err := <-done:
		t.Errorf("port-forward ended early: %v\n%s", err, stderr.String())
	default:
	}
}

// stepForwardPodCloses: one forward of two ports; connections to the one
// whose server closes them at once (pod side) end, and the forward goes on
// serving both ports.
func stepForwardPodCloses(t *testing.T, k *kubectl) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := k.cmd(ctx, nil, "port-forward", "pod/closer", ":8080", ":9999")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	locals := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				locals <- [2]string{m[2], m[1]}
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() { cancel(); <-exited }()
	local := map[string]string{}
	for len(local) < 2 {
		select {
		case l := <-locals:
			local[l[0]] = l[1]
		case err := <-exited:
			t.Fatalf("port-forward ended: %v\n%s", err, stderr.String())
		case <-time.After(kubectlTimeout):
			t.Fatalf("port-forward: no Forwarding lines\n%s", stderr.String())
		}
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 3; i++ {
		if resp, err := c.Get("http://127.0.0.1:" + local["9999"] + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("port 9999 answered %s; its server closes every connection", resp.Status)
		}
		resp, err := c.Get("http://127.0.0.1:" + local["8080"] + "/healthy")
		if err != nil {
			t.Fatalf("port 8080 after a connection the pod closed: %v\n%s", err, stderr.String())
		}
		resp.Body.Close()
	}
	select {
	case err := <-exited:
		t.Errorf("port-forward ended: %v\n%s", err, stderr.String())
		exited <- err
	default:
	}
}

// stepForwardPodDies: when the pod behind a forward is deleted, kubectl
// port-forward says so and ends instead of hanging.
func stepForwardPodDies(t *testing.T, k *kubectl) {
	k.run(t, "run", "victim", "--image="+kuardImage1)
	k.run(t, "wait", "--for=condition=Ready", "pod/victim", "--timeout=60s")
	waitServing(t, k, "victim")
	local, _, done, stderr := portForward(t, k, "pod/victim", "8080", "8080")
	c := &http.Client{Timeout: 10 * time.Second}
	if resp, err := c.Get("http://127.0.0.1:" + local + "/healthy"); err != nil {
		t.Fatalf("before the pod died: %v", err)
	} else {
		resp.Body.Close()
	}
	k.run(t, "delete", "pod", "victim", "--grace-period=1", "--wait=false")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "lost connection to pod") {
			t.Errorf("port-forward ended with %v, stderr %q; want an error saying the connection to the pod was lost", err, stderr.String())
		}
	case <-time.After(kubectlTimeout):
		t.Errorf("port-forward still running %s after its pod was deleted\n%s", kubectlTimeout, stderr.String())
	}
}

// stepCopy: kubectl cp into the pod and back (exec + tar).
func stepCopy(t *testing.T, k *kubectl, pod string) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.txt")
	want := strings.Repeat("kite cp\n", 1000)
	if err := os.WriteFile(src, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	remote := "/tmp/cp-" + k.v.name + ".txt"
	k.run(t, "cp", src, pod+":"+remote)
	if got := k.run(t, "exec", pod, "--", "cat", remote); got != want {
		t.Errorf("cp to the pod: the pod has %d bytes, want %d", len(got), len(want))
	}
	back := filepath.Join(dir, "back.txt")
	// Relative local paths: old kubectl versions mishandle absolute ones
	// with a colon-free form; use the directory as working directory.
	cmd := k.cmd(context.Background(), nil, "cp", pod+":"+remote, "back.txt")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cp from the pod: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(back); err != nil || string(got) != want {
		t.Errorf("cp from the pod: %d bytes (%v), want %d", len(got), err, len(want))
	}
}

// podSuffix makes a pod name per kubectl version ("kite", "133").
func podSuffix(k *kubectl) string { return strings.ReplaceAll(k.v.name, ".", "") }

// stepRunAttach: `kubectl run -i --rm` attaches to the new pod's stdin
// (stdinOnce: the end of kubectl's stdin closes the container's), shows
// its output and deletes the pod once it completed.
func stepRunAttach(t *testing.T, k *kubectl) {
	name := "attach-test-" + podSuffix(k)
	r := k.try(t, nil, "hello\n", "run", "-i", "--rm", "--restart=Never", name, "--image=busybox", "--", "cat")
	if r.err != nil || !strings.Contains(r.stdout, "hello") {
		t.Errorf("run -i --rm … cat: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}
	// (kubectl 1.20's wait --for=delete fails on a pod already gone.)
	waitPodGone(t, k, name)
}

// stepAttach: `kubectl attach -i` to a running pod with stdin: true sends
// it input and shows its output until it exits.
func stepAttach(t *testing.T, k *kubectl) {
	name := "attach-running-" + podSuffix(k)
	k.run(t, "run", name, "--image=busybox", "--restart=Never", "-i", "--attach=false", "--",
		"sh", "-c", `while read l; do echo "got $l"; done; echo bye`)
	defer k.run(t, "delete", "pod", name, "--wait=false")
	k.run(t, "wait", "--for=condition=Ready", "pod/"+name, "--timeout=60s")
	r := k.try(t, nil, "hello\n", "attach", "-i", name)
	if r.err != nil || !strings.Contains(r.stdout, "got hello\n") || !strings.Contains(r.stdout, "bye\n") {
		t.Errorf("attach -i: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}
	wantMatch(t, k.run(t, "get", "pod", name, "-o", "jsonpath={.spec.containers[0].stdin} {.spec.containers[0].stdinOnce}"), `^true true$`)
}

// stepRunTTY: `kubectl run -it --rm … -- sh` on a pseudo-terminal: the
// shell's first prompt came before kubectl attached (attach shows output
// from then on), so kubectl says to try pressing enter; then the shell answers
// and `exit` ends kubectl and deletes the pod.
func stepRunTTY(t *testing.T, k *kubectl) {
	name := "tty-test-" + podSuffix(k)
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := k.cmd(ctx, []string{"TERM=dumb"}, "run", "-it", "--rm", "--restart=Never", name, "--image=busybox", "--", "sh")
	out, err := runOnTerminalAfter(ctx, cmd, "pressing enter", "\necho $((40+2))\nexit 0\n")
	if err != nil {
		t.Fatalf("run -it --rm sh: %v\noutput:\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^42\r?$`).MatchString(out) {
		t.Errorf("run -it --rm sh: no 42 in:\n%s", out)
	}
	waitPodGone(t, k, name)
}

// waitServing waits until kuard in pod answers on 8080. The kuard pods
// have no readiness probe, so Ready means started, not yet listening; a
// forwarded connection refused by the pod makes kubectl (1.2x and later)
// end the whole port-forward.
func waitServing(t *testing.T, k *kubectl, pod string) {
	t.Helper()
	waitFor(t, kubectlTimeout, "kuard serving in "+pod, func() error {
		r := k.try(t, nil, "", "exec", pod, "--", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthy")
		if r.err != nil {
			return fmt.Errorf("%v: %s", r.err, r.stderr)
		}
		return nil
	})
}

// waitPodGone waits until `kubectl run --rm` has deleted its pod.
func waitPodGone(t *testing.T, k *kubectl, name string) {
	t.Helper()
	waitFor(t, kubectlTimeout, "pod "+name+" deleted after kubectl run --rm", func() error {
		if out := k.run(t, "get", "pod", name, "--ignore-not-found", "-o", "name"); out != "" {
			return fmt.Errorf("still there: %s", strings.TrimSpace(out))
		}
		return nil
	})
}

// syncBuffer is a bytes buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
