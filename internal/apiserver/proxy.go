package apiserver

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/proxy"
)

// The subresources served by a node's agent, which the API server proxies:
// pods/log, pods/exec, pods/attach, pods/portforward and nodes/proxy. The
// agent listens at the node's InternalIP and status.daemonEndpoints'
// kubelet port, at kubelet's paths; the API server presents the client
// certificate agentClientName (signed by the cluster CA), which is the only
// identity the agent admits. Upgrades (SPDY, WebSocket, SPDY tunnelled in
// WebSocket) are passed through byte for byte: the agent speaks every
// protocol kubectl uses, so no translation happens here.

// agentClientName is the API server's identity towards agents (kubeadm's
// apiserver-kubelet-client); the agent checks it.
const agentClientName = "kube-apiserver-kubelet-client"

// connectSubresource: a request for one of the proxied subresources.
func connectSubresource(info *requestInfo) bool {
	switch info.res.gvr.Resource + "/" + info.subresource {
	case "pods/log", "pods/exec", "pods/attach", "pods/portforward", "nodes/proxy":
		return true
	}
	return false
}

// newAgentTransport is how the API server reaches agents: with its client
// certificate, not verifying the agent's self-made serving certificate
// (as upstream does without --kubelet-certificate-authority).
func newAgentTransport(certFile, keyFile string) (*http.Transport, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("agent client certificate %s: %w", certFile, err)
	}
	return &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates:       []tls.Certificate{pair},
			InsecureSkipVerify: true,
			MinVersion:         tls.VersionTLS12,
		},
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 16,
	}, nil
}

// connect proxies a connect subresource to the agent of the pod's (or the
// named) node, after checking what upstream's registry checks.
func (s *Server) connect(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	var loc *url.URL
	var err error
	if info.res.gvr.Resource == "nodes" {
		loc, err = s.nodeProxyLocation(r, info)
	} else {
		loc, err = s.podLocation(r, info)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The caller's credentials are for this server, not for the agent.
	r.Header.Del("Authorization")
	// The handler sends an upgrade to loc's query but a plain request
	// (logs) with the request's own: make them the same.
	r.URL.RawQuery = loc.RawQuery
	h := proxy.NewUpgradeAwareHandler(loc, s.agentTransport, false, false, agentErrors{s})
	// Logs are streamed: pass every write on at once.
	h.FlushInterval = -1
	h.ServeHTTP(w, r)
}

// agentErrors answers a failure to reach the agent as upstream does: a
// 500 Status carrying the error ("error dialing backend: ...").
type agentErrors struct{ s *Server }

func (a agentErrors) Error(w http.ResponseWriter, r *http.Request, err error) {
	a.s.writeError(w, r, &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error()}})
}

// podLocation is the agent URL for pods/log, exec, attach or portforward.
func (s *Server) podLocation(r *http.Request, info *requestInfo) (*url.URL, error) {
	pod := &corev1.Pod{}
	if err := s.store.Get(r.Context(), info.res.key(info.namespace, info.name), pod); err != nil {
		return nil, apiError(err, info.res.groupResource(), info.name)
	}
	if pod.Spec.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	q := r.URL.Query()
	out := url.Values{}
	var p string
	switch info.subresource {
	case "log":
		container, err := podContainer(pod, q.Get("container"))
		if err != nil {
			return nil, err
		}
		for _, k := range []string{"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"} {
			if v := q.Get(k); v != "" {
				out.Set(k, v)
			}
		}
		if err := checkLogOptions(out); err != nil {
			return nil, err
		}
		p = path.Join("/containerLogs", pod.Namespace, pod.Name, container)
	case "exec", "attach":
		container, err := podContainer(pod, q.Get("container"))
		if err != nil {
			return nil, err
		}
		if ph := pod.Status.Phase; ph == corev1.PodSucceeded || ph == corev1.PodFailed {
			verb := "exec into"
			if info.subresource == "attach" {
				verb = "attach to"
			}
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot %s a container in a completed pod; current phase is %s", verb, ph))
		}
		if info.subresource == "exec" {
			cmd := q["command"]
			if len(cmd) == 0 {
				return nil, apierrors.NewBadRequest("you must specify at least 1 command")
			}
			out["command"] = cmd
		}
		// PodExecOptions' names on the API, kubelet's towards the node.
		for _, k := range [][2]string{{"stdin", "input"}, {"stdout", "output"}, {"stderr", "error"}, {"tty", "tty"}} {
			if on, _ := strconv.ParseBool(q.Get(k[0])); on {
				out.Set(k[1], "1")
			}
		}
		p = path.Join("/"+info.subresource, pod.Namespace, pod.Name, container)
	case "portforward":
		for _, port := range q["ports"] {
			for _, one := range strings.Split(port, ",") {
				if n, err := strconv.ParseUint(one, 10, 16); err != nil || n == 0 {
					return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid port %q: must be between 1 and 65535", one))
				}
				out.Add("port", one)
			}
		}
		p = path.Join("/portForward", pod.Namespace, pod.Name)
	}
	host, err := s.agentAddress(r, pod.Spec.NodeName)
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: "https", Host: host, Path: p, RawQuery: out.Encode()}, nil
}

// nodeProxyLocation is the agent URL for nodes/NAME/proxy/PATH.
func (s *Server) nodeProxyLocation(r *http.Request, info *requestInfo) (*url.URL, error) {
	host, err := s.agentAddress(r, info.name)
	if err != nil {
		return nil, err
	}
	p := "/" + info.proxyPath
	if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return &url.URL{Scheme: "https", Host: host, Path: p, RawQuery: r.URL.RawQuery}, nil
}

// agentAddress is host:port of a node's agent, from its Node.
func (s *Server) agentAddress(r *http.Request, nodeName string) (string, error) {
	nodes := s.reg.lookup(coreV1, "nodes")
	node := &corev1.Node{}
	if err := s.store.Get(r.Context(), nodes.key("", nodeName), node); err != nil {
		return "", apiError(err, nodes.groupResource(), nodeName)
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	var ip string
	for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == typ && ip == "" {
				ip = a.Address
			}
		}
	}
	if ip == "" || port <= 0 {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %s has not reported the address of its agent yet", nodeName))
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(port))), nil
}

// podContainer picks the container a request names, or the pod's only
// (or default) container, with upstream's messages.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	all := func(cs []corev1.Container) []string {
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		return names
	}
	if name == "" {
		if d := pod.Annotations["kubectl.kubernetes.io/default-container"]; d != "" {
			name = d
		} else if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		} else if len(pod.Spec.Containers) == 0 {
			return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", pod.Name))
		} else {
			msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, all(pod.Spec.Containers))
			if inits := all(pod.Spec.InitContainers); len(inits) > 0 {
				msg += fmt.Sprintf(" or one of the init containers: %v", inits)
			}
			return "", apierrors.NewBadRequest(msg)
		}
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == name {
				return name, nil
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

// checkLogOptions validates PodLogOptions as upstream's validation does.
func checkLogOptions(q url.Values) error {
	num := func(k string, min int64) error {
		v := q.Get(k)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("%s: %q is not a number", k, v))
		}
		if n < min {
			return apierrors.NewBadRequest(fmt.Sprintf("%s: Invalid value: %d: must be greater than or equal to %d", k, n, min))
		}
		return nil
	}
	for k, min := range map[string]int64{"tailLines": 0, "limitBytes": 1, "sinceSeconds": 1} {
		if err := num(k, min); err != nil {
			return err
		}
	}
	if q.Get("sinceSeconds") != "" && q.Get("sinceTime") != "" {
		return apierrors.NewBadRequest("at most one of `sinceTime` or `sinceSeconds` may be specified")
	}
	if v := q.Get("sinceTime"); v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("sinceTime: %q is not an RFC 3339 time", v))
		}
	}
	return nil
}
