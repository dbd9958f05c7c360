package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	gwebsocket "github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/portforward"
	crisportforward "k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"

	"kite/internal/runtime"
)

// Stream timeouts, kubelet's defaults: a connection idle this long is
// closed; a client gets this long to open the streams it announced.
const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
	// portDialTimeout bounds connecting to a port inside the pod.
	portDialTimeout = 5 * time.Second
)

// The wire protocols, per kubectl version (all served):
//
//   - exec, attach: SPDY/3.1 with remotecommand v1–v4 (kubectl ≤ 1.29, and
//     later ones when WebSocket fails), WebSocket v1–v4 (other clients), and
//     WebSocket v5.channel.k8s.io (kubectl ≥ 1.30: v4 plus a CLOSE signal so
//     the client can end stdin, which `kubectl cp` needs). cri-streaming
//     (kubelet's library) serves all but v5; kite serves v5 itself.
//   - port-forward: SPDY/3.1 (kubectl ≤ 1.30), WebSocket v4 channels, and
//     SPDY tunnelled through WebSocket, SPDY/3.1+portforward.k8s.io (kubectl
//     ≥ 1.31). The tunnel is unwrapped here and served as plain SPDY.

// podByName finds a pod bound to this node.
func (s *server) podByName(namespace, name string) (*corev1.Pod, *apierrors.StatusError) {
	obj, ok, err := s.m.podIndexer.GetByKey(namespace + "/" + name)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if !ok {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	return obj.(*corev1.Pod), nil
}

// instances returns a container's instances on this node, newest first,
// after checking the pod has such a container.
func (s *server) instances(ctx context.Context, pod *corev1.Pod, container string) ([]runtime.ContainerStatus, *apierrors.StatusError) {
	if podContainer(pod, container) == nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, pod.Name))
	}
	all, err := s.m.rt.ListContainers(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var list []runtime.ContainerStatus
	for _, c := range all {
		if c.Labels[labelPodUID] == string(pod.UID) && c.Labels[labelContainer] == container {
			list = append(list, c)
		}
	}
	sort.Slice(list, func(i, j int) bool { return attemptOf(&list[i]) > attemptOf(&list[j]) })
	return list, nil
}

// running finds the running instance of a container.
func (s *server) running(ctx context.Context, namespace, name, container string) (*corev1.Pod, *runtime.ContainerStatus, *apierrors.StatusError) {
	pod, serr := s.podByName(namespace, name)
	if serr != nil {
		return nil, nil, serr
	}
	insts, serr := s.instances(ctx, pod, container)
	if serr != nil {
		return nil, nil, serr
	}
	if len(insts) == 0 || insts[0].State != runtime.StateRunning {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("container %s in pod %s is not running", container, name))
	}
	return pod, &insts[0], nil
}

// serveLogs is kubelet's /containerLogs: one container's log, with the
// options of kubectl logs.
func (s *server) serveLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	opts, previous, err := parseLogOptions(r)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	pod, serr := s.podByName(ns, name)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	insts, serr := s.instances(r.Context(), pod, container)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	var inst *runtime.ContainerStatus
	switch {
	case previous && len(insts) < 2:
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", container, name)))
		return
	case previous:
		inst = &insts[1]
	case len(insts) == 0:
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, name, waitingReason(pod, container))))
		return
	default:
		inst = &insts[0]
	}
	if previous {
		opts.follow = false
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	id := inst.ID
	isRunning := func() bool {
		st, err := s.m.rt.ContainerStatus(r.Context(), id)
		return err == nil && st.State == runtime.StateRunning
	}
	if err := writeLog(r.Context(), inst.LogPath, opts, flushWriter{w}, nil, isRunning); err != nil && r.Context().Err() == nil {
		klog.FromContext(r.Context()).Error(err, "serve logs", "pod", klog.KObj(pod), "container", container)
	}
}

// waitingReason is why a container has no instance yet, from the pod's
// status (ContainerCreating when it says nothing).
func waitingReason(pod *corev1.Pod, container string) string {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for _, cs := range list {
			if cs.Name == container && cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
				return cs.State.Waiting.Reason
			}
		}
	}
	return "ContainerCreating"
}

// parseLogOptions reads PodLogOptions from the query, as the API server
// forwards them.
func parseLogOptions(r *http.Request) (logOptions, bool, error) {
	q := r.URL.Query()
	opts := logOptions{follow: queryBool(r, "follow"), timestamps: queryBool(r, "timestamps"), tail: -1}
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return opts, false, fmt.Errorf("tailLines %q: must be a number ≥ 0", v)
		}
		opts.tail = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return opts, false, fmt.Errorf("limitBytes %q: must be a number ≥ 1", v)
		}
		opts.limitBytes = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return opts, false, fmt.Errorf("sinceSeconds %q: must be a number ≥ 1", v)
		}
		opts.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return opts, false, fmt.Errorf("sinceTime %q: %w", v, err)
		}
		opts.since = t
	}
	return opts, queryBool(r, "previous"), nil
}

// flushWriter sends what is written at once: followed logs must not sit in
// a buffer.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flushWriter) Flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}

// commandFunc runs a command's streams to the end: exec or attach.
type commandFunc func(ctx context.Context, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error

// adapter gives cri-streaming the Executor and Attacher it calls.
type adapter struct{ run commandFunc }

func (a adapter) ExecInContainer(ctx context.Context, _, _, _ string, _ []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return a.run(ctx, in, out, errw, tty, resize)
}

func (a adapter) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return a.run(ctx, in, out, errw, tty, resize)
}

// serveExec is kubelet's /exec: a command in a running container.
func (s *server) serveExec(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		writeStatus(w, apierrors.NewBadRequest("you must specify at least 1 command"))
		return
	}
	pod, inst, serr := s.running(r.Context(), ns, name, container)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	run := func(ctx context.Context, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
		cfg := runtime.ExecConfig{Cmd: cmd, TTY: tty, Stdin: in, Resize: sizes(ctx, resize)}
		if out != nil {
			cfg.Stdout = out
		}
		if errw != nil {
			cfg.Stderr = errw
		}
		code, err := s.m.rt.Exec(ctx, inst.ID, cfg)
		if err != nil {
			return err
		}
		if code != 0 {
			return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
		}
		return nil
	}
	s.serveCommand(w, r, pod, container, cmd, run, true)
}

// serveAttach is kubelet's /attach: the container's main process from now
// on, until it exits. A container with stdin or a TTY is attached through
// its shim (input, output, window size); for others, which have nothing
// to take input, attach follows the log.
func (s *server) serveAttach(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	pod, inst, serr := s.running(r.Context(), ns, name, container)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	id, logPath := inst.ID, inst.LogPath
	interactive := false
	if c := podContainer(pod, container); c != nil {
		interactive = c.Stdin || c.TTY
	}
	run := func(ctx context.Context, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
		var o, e io.Writer
		if out != nil {
			o = out
		}
		if errw != nil {
			e = errw
		}
		if interactive {
			err := s.m.rt.Attach(ctx, id, runtime.AttachConfig{Stdin: in, Stdout: o, Stderr: e, TTY: tty, Resize: sizes(ctx, resize)})
			if errors.Is(err, context.Canceled) {
				return nil // the client went away
			}
			return err
		}
		if in != nil && e != nil {
			fmt.Fprintln(e, "kite: the container does not take stdin (stdin: false); showing its output only")
		}
		if o == nil {
			o = io.Discard
		}
		isRunning := func() bool {
			st, err := s.m.rt.ContainerStatus(ctx, id)
			return err == nil && st.State == runtime.StateRunning
		}
		return writeLog(ctx, logPath, logOptions{follow: true, tail: 0}, o, e, isRunning)
	}
	s.serveCommand(w, r, pod, container, nil, run, false)
}

// podContainer returns the pod's container (or init container) of that
// name, nil if there is none.
func podContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// serveCommand speaks the client's protocol for exec or attach.
func (s *server) serveCommand(w http.ResponseWriter, r *http.Request, pod *corev1.Pod, container string, cmd []string, run commandFunc, exec bool) {
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		s.serveV5(w, r, run)
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	a := adapter{run: run}
	if exec {
		remotecommand.ServeExec(w, r, a, pod.Name, string(pod.UID), container, cmd, opts,
			streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
		return
	}
	remotecommand.ServeAttach(w, r, a, pod.Name, string(pod.UID), container, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// The channels of remotecommand over WebSocket, v4 and v5.
const (
	chanStdin = iota
	chanStdout
	chanStderr
	chanError
	chanResize
)

// serveV5 serves remotecommand over WebSocket v5.channel.k8s.io: v4's
// channels (stdin, stdout, stderr, error with a JSON Status, resize) and
// the CLOSE signal, with which the client ends stdin.
func (s *server) serveV5(w http.ResponseWriter, r *http.Request, run commandFunc) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	channels := make([]wsstream.ChannelType, 5)
	set := func(i int, on bool, t wsstream.ChannelType) {
		if on {
			channels[i] = t
		}
	}
	set(chanStdin, opts.Stdin, wsstream.ReadChannel)
	set(chanStdout, opts.Stdout, wsstream.WriteChannel)
	set(chanStderr, opts.Stderr && !opts.TTY, wsstream.WriteChannel)
	set(chanError, true, wsstream.WriteChannel)
	set(chanResize, opts.TTY, wsstream.ReadChannel)
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(streamIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		klog.FromContext(r.Context()).V(2).Info("websocket upgrade failed", "err", err)
		return
	}
	defer conn.Close()
	var in io.Reader
	var out, errw io.WriteCloser
	if opts.Stdin {
		in = streams[chanStdin]
	}
	if opts.Stdout {
		out = streams[chanStdout]
	}
	if opts.Stderr && !opts.TTY {
		errw = streams[chanStderr]
	}
	var resize chan remotecommand.TerminalSize
	if opts.TTY {
		resize = make(chan remotecommand.TerminalSize)
		go decodeResizes(r.Context(), streams[chanResize], resize)
	}
	st := commandStatus(run(r.Context(), in, out, errw, opts.TTY, resize))
	json.NewEncoder(streams[chanError]).Encode(st)
}

// commandStatus is the Status written on the error channel when the
// command ends, as kubectl reads it (the exit code in a cause).
func commandStatus(err error) *metav1.Status {
	st := &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	var exit utilexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		st.Status, st.Reason = metav1.StatusFailure, remotecommand.NonZeroExitCodeReason
		st.Message = fmt.Sprintf("command terminated with non-zero exit code: %v", err)
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{
			Type: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(exit.ExitStatus())}}}
	default:
		st.Status, st.Reason, st.Code = metav1.StatusFailure, metav1.StatusReasonInternalError, http.StatusInternalServerError
		st.Message = err.Error()
	}
	return st
}

// decodeResizes reads the resize channel's JSON sizes until it ends.
func decodeResizes(ctx context.Context, r io.Reader, out chan<- remotecommand.TerminalSize) {
	defer close(out)
	dec := json.NewDecoder(r)
	for {
		var size remotecommand.TerminalSize
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case out <- size:
		case <-ctx.Done():
			return
		}
	}
}

// sizes converts the client's terminal sizes for the runtime.
func sizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan runtime.Size {
	if in == nil {
		return nil
	}
	out := make(chan runtime.Size)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- runtime.Size{Width: s.Width, Height: s.Height}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// servePortForward is kubelet's /portForward: connections to ports of the
// pod, dialled inside the pod's network namespace.
func (s *server) servePortForward(w http.ResponseWriter, r *http.Request) {
	pod, serr := s.podByName(r.PathValue("namespace"), r.PathValue("pod"))
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	fwd := &forwarder{s: s, pod: pod}
	hw := &hijackWatch{ResponseWriter: w}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go s.closeWhenPodGone(ctx, pod, hw)
	if wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		s.serveTunnel(hw, r, fwd)
		return
	}
	opts, err := crisportforward.NewV4Options(r)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	crisportforward.ServePortForward(hw, r, fwd, pod.Name, string(pod.UID), opts,
		streamIdleTimeout, streamCreationTimeout, crisportforward.SupportedProtocols)
}

// podGonePoll is how often a port-forward checks that its pod still
// exists.
const podGonePoll = 500 * time.Millisecond

// closeWhenPodGone closes a port-forward's connection once its pod is gone
// from the API or from the node, so the client learns the pod died (kubectl:
// "lost connection to pod") instead of waiting on a forward to nothing.
func (s *server) closeWhenPodGone(ctx context.Context, pod *corev1.Pod, hw *hijackWatch) {
	t := time.NewTicker(podGonePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		obj, ok, _ := s.m.podIndexer.GetByKey(pod.Namespace + "/" + pod.Name)
		gone := !ok || obj.(*corev1.Pod).UID != pod.UID
		if sb, _ := s.m.listed(pod.UID); sb == nil && !pod.Spec.HostNetwork {
			gone = true
		}
		if gone {
			hw.close()
			return
		}
	}
}

// hijackWatch remembers the connection a protocol handler hijacks, so that
// it can be closed from outside.
type hijackWatch struct {
	http.ResponseWriter
	mu   sync.Mutex
	conn net.Conn
}

func (h *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	conn, rw, err := hj.Hijack()
	h.mu.Lock()
	h.conn = conn
	h.mu.Unlock()
	return conn, rw, err
}

func (h *hijackWatch) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		h.conn.Close()
	}
}

// serveTunnel unwraps SPDY tunnelled through WebSocket and serves it as a
// plain SPDY upgrade on the tunnel: the client starts SPDY straight after
// the WebSocket handshake, so the SPDY upgrade's own response is not sent.
func (s *server) serveTunnel(w http.ResponseWriter, r *http.Request, fwd *forwarder) {
	up := gwebsocket.Upgrader{
		Subprotocols: []string{crisportforward.WebsocketsSPDYTunnelingPortForwardV1},
		CheckOrigin:  func(*http.Request) bool { return true },
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the client
	}
	conn := portforward.NewTunnelingConnectionWithLogger(klog.FromContext(r.Context()), ws)
	defer conn.Close()
	req := r.Clone(r.Context())
	req.Header = http.Header{}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Set("X-Stream-Protocol-Version", crisportforward.ProtocolV1Name)
	crisportforward.ServePortForward(&tunnelResponse{conn: conn, header: http.Header{}}, req, fwd, fwd.pod.Name, string(fwd.pod.UID),
		&crisportforward.V4Options{}, streamIdleTimeout, streamCreationTimeout, crisportforward.SupportedProtocols)
}

// tunnelResponse is the ResponseWriter of the SPDY upgrade inside a
// tunnel: headers and status go nowhere, and hijacking yields the tunnel.
type tunnelResponse struct {
	conn   net.Conn
	header http.Header
}

func (t *tunnelResponse) Header() http.Header         { return t.header }
func (t *tunnelResponse) Write(p []byte) (int, error) { return len(p), nil }
func (t *tunnelResponse) WriteHeader(int)             {}
func (t *tunnelResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return t.conn, bufio.NewReadWriter(bufio.NewReader(t.conn), bufio.NewWriter(t.conn)), nil
}

// forwarder connects a client's stream to a port in a pod.
type forwarder struct {
	s   *server
	pod *corev1.Pod
}

// PortForward dials the port on the pod's loopback from inside its network
// namespace (so it reaches servers bound to localhost, as kubelet does) and
// copies both ways until either side closes.
func (f *forwarder) PortForward(ctx context.Context, _ string, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	conn, err := f.dial(ctx, port)
	if err != nil {
		return fmt.Errorf("error forwarding port %d to pod %s/%s: %w", port, f.pod.Namespace, f.pod.Name, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(conn, stream)
		// The client finished sending: pass the half-close on.
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(stream, conn)
		done <- struct{}{}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

func (f *forwarder) dial(ctx context.Context, port int32) (net.Conn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	d := net.Dialer{Timeout: portDialTimeout}
	if f.pod.Spec.HostNetwork {
		return d.DialContext(ctx, "tcp4", addr)
	}
	sb, err := f.sandbox(ctx)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	// The socket is made on a thread switched into the pod's namespace,
	// and stays there.
	err = ns.WithNetNSPath(sb.NetNSPath, func(ns.NetNS) error {
		var err error
		conn, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	return conn, err
}

func (f *forwarder) sandbox(ctx context.Context) (*runtime.Sandbox, error) {
	sbs, err := f.s.m.rt.ListSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	for i := range sbs {
		if sbs[i].ID == sandboxID(types.UID(f.pod.UID)) && sbs[i].NetNSPath != "" {
			return &sbs[i], nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s has no network namespace on this node (not started yet?)", f.pod.Namespace, f.pod.Name)
}
