package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// prober runs the probes of one running container instance, each in its
// own goroutine, and holds their verdicts for the pod's sync. A verdict
// that changes wakes the pod's worker. Probes of a container that is not
// running are stopped by the worker (stop).
type prober struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// ready: the readiness probe's verdict (true without one).
	ready bool
	// started: the startup probe succeeded (or there is none).
	started bool
	// killReason is set when a liveness or startup probe has failed
	// failureThreshold times: the container is to be restarted.
	killReason string
}

type proberVerdict struct {
	Ready, Started bool
	KillReason     string
}

func (p *prober) verdict() proberVerdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	return proberVerdict{Ready: p.ready && p.started, Started: p.started, KillReason: p.killReason}
}

func (p *prober) stop() {
	p.cancel()
	p.wg.Wait()
}

// probeSet describes what to probe.
type probeSet struct {
	Container *corev1.Container
	Instance  runtime.ContainerStatus
	PodIP     string
	// Ready and Started seed the verdicts, from the pod's last status for
	// the same instance, so an agent restart does not flap Ready.
	Ready, Started bool
	// Run executes one probe attempt.
	Run func(ctx context.Context, p *corev1.Probe, timeout time.Duration) (ok bool, msg string)
	// Changed is called when a verdict changes; Failed on every failed
	// attempt (for the Unhealthy event).
	Changed func()
	Failed  func(kind, msg string)
	// Probed, when set, is called after each attempt and its verdict.
	Probed func()
}

func startProber(ctx context.Context, ps probeSet) *prober {
	ctx, cancel := context.WithCancel(ctx)
	c := ps.Container
	p := &prober{cancel: cancel, started: ps.Started || c.StartupProbe == nil, ready: ps.Ready || c.ReadinessProbe == nil}
	started := make(chan struct{})
	if p.started {
		close(started)
	}
	for _, pr := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"Startup", c.StartupProbe}, {"Readiness", c.ReadinessProbe}, {"Liveness", c.LivenessProbe}} {
		if pr.probe == nil || (pr.kind == "Startup" && p.started) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.loop(ctx, pr.kind, pr.probe, ps, started)
		}()
	}
	return p
}

// loop runs one probe: after initialDelaySeconds from the container's
// start (and, for liveness and readiness, after the startup probe
// succeeded), every periodSeconds, each attempt bounded by
// timeoutSeconds; successThreshold consecutive successes or
// failureThreshold consecutive failures change the verdict.
func (p *prober) loop(ctx context.Context, kind string, spec *corev1.Probe, ps probeSet, started chan struct{}) {
	if kind != "Startup" {
		select {
		case <-started:
		case <-ctx.Done():
			return
		}
	}
	if !sleepUntil(ctx, ps.Instance.StartedAt.Add(seconds(spec.InitialDelaySeconds, 0))) {
		return
	}
	period, timeout := seconds(spec.PeriodSeconds, 10), seconds(spec.TimeoutSeconds, 1)
	successes, failures := int(max(spec.SuccessThreshold, 1)), int(max(spec.FailureThreshold, 1))
	if spec.FailureThreshold == 0 {
		failures = 3
	}
	okRun, failRun := 0, 0
	for {
		ok, msg := ps.Run(ctx, spec, timeout)
		if ctx.Err() != nil {
			return
		}
		if ok {
			okRun, failRun = okRun+1, 0
		} else {
			okRun, failRun = 0, failRun+1
			ps.Failed(kind, msg)
		}
		stop := p.judge(kind, ok, okRun, failRun, successes, failures, ps.Changed, started)
		if ps.Probed != nil {
			ps.Probed()
		}
		if stop {
			return
		}
		if !sleepUntil(ctx, time.Now().Add(period)) {
			return
		}
	}
}

// judge turns a run of results into the probe's verdict; it reports
// whether the probe is done (a startup probe passed; a liveness or
// startup probe failed for good).
func (p *prober) judge(kind string, ok bool, okRun, failRun, successes, failures int, changed func(), started chan struct{}) bool {
	switch kind {
	case "Readiness":
		if ok && okRun >= successes {
			p.set(func() bool { ch := !p.ready; p.ready = true; return ch }, changed)
		} else if !ok && failRun >= failures {
			p.set(func() bool { ch := p.ready; p.ready = false; return ch }, changed)
		}
	case "Liveness":
		if failRun >= failures {
			p.set(func() bool { p.killReason = "failed liveness probe"; return true }, changed)
			return true
		}
	case "Startup":
		if ok {
			p.set(func() bool { p.started = true; return true }, changed)
			close(started)
			return true
		}
		if failRun >= failures {
			p.set(func() bool { p.killReason = "failed startup probe"; return true }, changed)
			return true
		}
	}
	return false
}

func (p *prober) set(f func() bool, changed func()) {
	p.mu.Lock()
	ch := f()
	p.mu.Unlock()
	if ch {
		changed()
	}
}

func seconds(n, def int32) time.Duration {
	if n <= 0 {
		n = def
	}
	return time.Duration(n) * time.Second
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// probeRunner executes probes of one container: HTTP and TCP from the
// node's network namespace to the pod's IP (which reaches the pod over the
// bridge), exec through the runtime.
type probeRunner struct {
	rt          runtime.Interface
	containerID string
	container   *corev1.Container
	podIP       string
}

// maxProbeOutput bounds what a probe's failure message quotes.
const maxProbeOutput = 10 << 10

func (r probeRunner) run(ctx context.Context, p *corev1.Probe, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		var out bytes.Buffer
		w := &limitWriter{w: &out, n: maxProbeOutput}
		code, err := r.rt.Exec(ctx, r.containerID, runtime.ExecConfig{Cmd: p.Exec.Command, Stdout: w, Stderr: w})
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			return false, fmt.Sprintf("command %q timed out", p.Exec.Command)
		case err != nil:
			return false, err.Error()
		case code != 0:
			return false, out.String()
		}
		return true, ""
	case p.HTTPGet != nil:
		return r.httpGet(ctx, p.HTTPGet)
	case p.TCPSocket != nil:
		port, err := r.port(p.TCPSocket.Port)
		if err != nil {
			return false, err.Error()
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = r.podIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case p.GRPC != nil:
		return r.grpc(ctx, p.GRPC, timeout)
	}
	return false, "probe has no handler"
}

func (r probeRunner) httpGet(ctx context.Context, h *corev1.HTTPGetAction) (bool, string) {
	code, err := r.doHTTPGet(ctx, h)
	if err != nil {
		return false, err.Error()
	}
	if code >= 200 && code < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", code)
}

// doHTTPGet makes the GET of an httpGet action (a probe's or a lifecycle
// hook's) and returns the response's status code.
func (r probeRunner) doHTTPGet(ctx context.Context, h *corev1.HTTPGetAction) (int, error) {
	port, err := r.port(h.Port)
	if err != nil {
		return 0, err
	}
	host := h.Host
	if host == "" {
		host = r.podIP
	}
	scheme := "http"
	if h.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := h.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if hd.Name == "Host" {
			req.Host = hd.Value
		} else {
			req.Header.Add(hd.Name, hd.Value)
		}
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true, Proxy: nil},
		// A redirect answers the probe: 3xx counts as success.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeOutput))
	return resp.StatusCode, nil
}

// grpc asks the pod's gRPC server for its health through the standard
// grpc.health.v1.Health/Check, at the pod's IP like the other probes.
// Only SERVING passes; the messages are upstream's.
func (r probeRunner) grpc(ctx context.Context, g *corev1.GRPCAction, timeout time.Duration) (bool, string) {
	service := ptr.Deref(g.Service, "")
	conn, err := grpc.NewClient(net.JoinHostPort(r.podIP, strconv.Itoa(int(g.Port))),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent("kube-probe/1.37"))
	if err != nil {
		return false, fmt.Sprintf("error: failed to connect service %q: %v", service, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		switch status.Code(err) {
		case codes.Unimplemented:
			return false, fmt.Sprintf("this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", status.Convert(err).Message())
		case codes.DeadlineExceeded:
			return false, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout)
		case codes.Unavailable:
			return false, fmt.Sprintf("timeout: failed to connect service %q within %v: %v", service, timeout, err)
		}
		return false, fmt.Sprintf("error: health rpc probe failed: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return false, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return true, ""
}

// port resolves a probe's port: a number, or the name of a container port.
func (r probeRunner) port(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	for _, cp := range r.container.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", r.container.Name, p.StrVal)
}

// limitWriter keeps the first n bytes written to it; stdout and stderr
// may write concurrently.
type limitWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}
