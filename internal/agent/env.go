package agent

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// envSource is where a container's environment comes from besides the
// pod: the Services of the cluster and the pod's ConfigMaps and Secrets.
type envSource interface {
	services() ([]*corev1.Service, error)
	configMap(namespace, name string) (*corev1.ConfigMap, error)
	secret(namespace, name string) (*corev1.Secret, error)
}

// envInput is what a container's environment is computed from.
type envInput struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	Image     Image
	Hostname  string
	PodIPs    []string
	HostIP    string
	// Allocatable is the node's, for resourceFieldRef limits not set.
	Allocatable corev1.ResourceList
	Source      envSource
}

// envList is an ordered environment where setting a name again replaces
// its value in place.
type envList struct {
	names []string
	vals  map[string]string
}

func (e *envList) set(name, val string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[name]; !ok {
		e.names = append(e.names, name)
	}
	e.vals[name] = val
}

func (e *envList) strings() []string {
	out := make([]string, 0, len(e.names))
	for _, n := range e.names {
		out = append(out, n+"="+e.vals[n])
	}
	return out
}

// defaultPath is the PATH of a container whose image sets none
// (containerd's default).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// containerEnv computes a container's complete environment, as kubelet
// and a CRI runtime do together: HOSTNAME, then the image's variables,
// then the pod's (envFrom, then env with $(VAR) expansion and valueFrom
// resolved), then the Service variables not already set. It also returns
// the pod's variables alone, which command and args are expanded with.
func containerEnv(in envInput) ([]string, map[string]string, error) {
	kube, err := kubeletEnv(in)
	if err != nil {
		return nil, nil, err
	}
	var env envList
	env.set("PATH", defaultPath)
	env.set("HOSTNAME", in.Hostname)
	for _, kv := range in.Image.Env {
		k, v, _ := strings.Cut(kv, "=")
		env.set(k, v)
	}
	for _, n := range kube.names {
		env.set(n, kube.vals[n])
	}
	return env.strings(), kube.vals, nil
}

// kubeletEnv is the part of the environment kubelet computes
// (makeEnvironmentVariables upstream).
func kubeletEnv(in envInput) (*envList, error) {
	pod, c := in.Pod, in.Container
	svcEnv, err := serviceEnv(in.Source, pod)
	if err != nil {
		return nil, err
	}
	var env envList
	// envFrom first; env below replaces what it sets.
	for _, ef := range c.EnvFrom {
		data, err := envFromData(in.Source, pod.Namespace, ef)
		if err != nil {
			return nil, err
		}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			env.set(ef.Prefix+k, data[k])
		}
	}
	mapping := func(name string) (string, bool) {
		if v, ok := env.vals[name]; ok {
			return v, true
		}
		v, ok := svcEnv[name]
		return v, ok
	}
	for _, ev := range c.Env {
		val := ev.Value
		if val != "" {
			val = expand(val, mapping)
		} else if ev.ValueFrom != nil {
			v, ok, err := envValueFrom(in, ev.ValueFrom)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", ev.Name, err)
			}
			if !ok {
				continue // an optional source that is missing
			}
			val = v
		}
		env.set(ev.Name, val)
	}
	for _, k := range slices.Sorted(maps.Keys(svcEnv)) {
		if _, ok := env.vals[k]; !ok {
			env.set(k, svcEnv[k])
		}
	}
	return &env, nil
}

func envFromData(src envSource, ns string, ef corev1.EnvFromSource) (map[string]string, error) {
	switch {
	case ef.ConfigMapRef != nil:
		cm, err := src.configMap(ns, ef.ConfigMapRef.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("configmap %q: %w", ef.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case ef.SecretRef != nil:
		s, err := src.secret(ns, ef.SecretRef.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && ef.SecretRef.Optional != nil && *ef.SecretRef.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("secret %q: %w", ef.SecretRef.Name, err)
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, nil
}

// envValueFrom resolves a valueFrom; ok is false for an optional source
// that does not exist.
func envValueFrom(in envInput, vf *corev1.EnvVarSource) (val string, ok bool, err error) {
	ns := in.Pod.Namespace
	switch {
	case vf.FieldRef != nil:
		v, err := podFieldValue(in, vf.FieldRef.FieldPath)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		v, err := resourceFieldValue(in.Container, vf.ResourceFieldRef, in.Allocatable)
		return v, err == nil, err
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := in.Source.configMap(ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		v, found := cm.Data[ref.Key]
		if !found {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
		}
		return v, true, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := in.Source.secret(ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		v, found := s.Data[ref.Key]
		if !found {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
		}
		return string(v), true, nil
	}
	return "", false, fmt.Errorf("valueFrom has no source")
}

// podFieldValue is a downward-API field of the pod.
func podFieldValue(in envInput, path string) (string, error) {
	pod := in.Pod
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return in.HostIP, nil
	case "status.podIP":
		if len(in.PodIPs) > 0 {
			return in.PodIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(in.PodIPs, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// resourceFieldValue is a container's limit or request divided by the
// divisor and rounded up; an unset limit is the node's allocatable.
func resourceFieldValue(c *corev1.Container, ref *corev1.ResourceFieldSelector, alloc corev1.ResourceList) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, set := list[corev1.ResourceName(name)]
	if !set && kind == "limits" {
		q = alloc[corev1.ResourceName(name)]
	}
	div := ref.Divisor
	if div.IsZero() {
		div.Set(1)
	}
	if name == string(corev1.ResourceCPU) {
		return fmt.Sprint(ceilDiv(q.MilliValue(), div.MilliValue())), nil
	}
	return fmt.Sprint(ceilDiv(q.Value(), div.Value())), nil
}

func ceilDiv(a, b int64) int64 {
	if b == 0 {
		return 0
	}
	return (a + b - 1) / b
}

// serviceEnv is the Docker-links style variables of the Services a pod
// sees (kubelet's getServiceEnvVarMap): the master Service "kubernetes"
// of the default namespace always, and every Service of the pod's
// namespace when enableServiceLinks is on. Services without a cluster IP
// (headless, ExternalName) give none.
func serviceEnv(src envSource, pod *corev1.Pod) (map[string]string, error) {
	svcs, err := src.services()
	if err != nil {
		return nil, err
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	byName := map[string]*corev1.Service{}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		switch {
		case s.Namespace == "default" && s.Name == "kubernetes":
			if _, ok := byName[s.Name]; !ok {
				byName[s.Name] = s
			}
		case s.Namespace == pod.Namespace && links:
			byName[s.Name] = s
		}
	}
	out := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		for _, kv := range serviceVars(byName[name]) {
			out[kv[0]] = kv[1]
		}
	}
	return out, nil
}

// serviceVars are one Service's variables in upstream's format and order:
// <NAME>_SERVICE_HOST, _SERVICE_PORT, _SERVICE_PORT_<PORTNAME> for named
// ports, then the Docker link variables _PORT (first port) and, per port,
// _PORT_<port>_<PROTO> with its _PROTO, _PORT and _ADDR.
func serviceVars(s *corev1.Service) [][2]string {
	prefix := envName(s.Name)
	ip := s.Spec.ClusterIP
	out := [][2]string{{prefix + "_SERVICE_HOST", ip}}
	if len(s.Spec.Ports) == 0 {
		return out
	}
	out = append(out, [2]string{prefix + "_SERVICE_PORT", fmt.Sprint(s.Spec.Ports[0].Port)})
	for _, p := range s.Spec.Ports {
		if p.Name != "" {
			out = append(out, [2]string{prefix + "_SERVICE_PORT_" + envName(p.Name), fmt.Sprint(p.Port)})
		}
	}
	for i, p := range s.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		url := fmt.Sprintf("%s://%s", strings.ToLower(proto), joinHostPort(ip, p.Port))
		if i == 0 {
			out = append(out, [2]string{prefix + "_PORT", url})
		}
		pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(proto))
		out = append(out,
			[2]string{pp, url},
			[2]string{pp + "_PROTO", strings.ToLower(proto)},
			[2]string{pp + "_PORT", fmt.Sprint(p.Port)},
			[2]string{pp + "_ADDR", ip})
	}
	return out
}

func joinHostPort(ip string, port int32) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

// envName turns a Service or port name into a variable name part.
func envName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// expand replaces $(VAR) references as Kubernetes does: a defined VAR
// gives its value, an undefined one stays as written, $$ is a literal $,
// and any other $ is kept.
func expand(input string, mapping func(string) (string, bool)) string {
	var b strings.Builder
	checkpoint := 0
	for i := 0; i < len(input); i++ {
		if input[i] != '$' || i+1 >= len(input) {
			continue
		}
		b.WriteString(input[checkpoint:i])
		next := input[i+1:]
		switch next[0] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(next, ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				break
			}
			name := next[1:end]
			if v, ok := mapping(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += end + 1
		default:
			b.WriteString(input[i : i+2])
			i++
		}
		checkpoint = i + 1
	}
	return b.String() + input[checkpoint:]
}

// expandArgs expands $(VAR) in a command line with the pod's variables.
func expandArgs(args []string, env map[string]string) []string {
	if len(args) == 0 {
		return args
	}
	mapping := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, mapping)
	}
	return out
}
