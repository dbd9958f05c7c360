package nodelifecycle

import (
	"errors"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Defaults, as upstream's kube-controller-manager and kube-apiserver flags.
const (
	// DefaultGracePeriod is --node-monitor-grace-period: how long a node may
	// go without renewing its Lease or posting status before it is
	// Ready=Unknown.
	DefaultGracePeriod = 40 * time.Second
	// DefaultStartupGracePeriod is --node-startup-grace-period: the same,
	// for a node that has never posted a Ready condition.
	DefaultStartupGracePeriod = 60 * time.Second
	// DefaultMonitorPeriod is --node-monitor-period: how often every node
	// is looked at even without an event.
	DefaultMonitorPeriod = 5 * time.Second
	// DefaultTolerationSeconds is the apiserver's
	// --default-not-ready-toleration-seconds and
	// --default-unreachable-toleration-seconds: a pod without its own
	// toleration for the not-ready or unreachable NoExecute taint is
	// evicted this long after the taint appears.
	DefaultTolerationSeconds = 300
)

// Config wires the node lifecycle controller.
type Config struct {
	// Client writes node status and taints, pod status, and deletes pods.
	Client kubernetes.Interface
	// Informers supplies the node, pod and Lease caches; the caller starts
	// it after New.
	Informers informers.SharedInformerFactory
	// Recorder emits NodeNotReady and TaintManagerEviction events.
	// Upstream's source component is "node-controller".
	Recorder record.EventRecorder

	// GracePeriod: a node silent this long becomes Ready=Unknown. Default
	// 40s.
	GracePeriod time.Duration
	// StartupGracePeriod: the same for a node that never posted Ready,
	// counted from its creation. Default 60s.
	StartupGracePeriod time.Duration
	// MonitorPeriod: every node is re-examined this often. Default 5s.
	MonitorPeriod time.Duration
	// NotReadyTolerationSeconds and UnreachableTolerationSeconds stand in
	// for the tolerations upstream's DefaultTolerationSeconds admission
	// adds to pods that lack them (kite's API server does not add them
	// yet): such a pod stays this long on a not-ready or unreachable node.
	// 0 means the default, 300.
	NotReadyTolerationSeconds, UnreachableTolerationSeconds int64
}

func (c Config) withDefaults() Config {
	if c.GracePeriod == 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.StartupGracePeriod == 0 {
		c.StartupGracePeriod = DefaultStartupGracePeriod
	}
	if c.MonitorPeriod == 0 {
		c.MonitorPeriod = DefaultMonitorPeriod
	}
	if c.NotReadyTolerationSeconds == 0 {
		c.NotReadyTolerationSeconds = DefaultTolerationSeconds
	}
	if c.UnreachableTolerationSeconds == 0 {
		c.UnreachableTolerationSeconds = DefaultTolerationSeconds
	}
	return c
}

// Validate reports a missing dependency or a nonsensical period.
func (c Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("nodelifecycle: Client is required"))
	}
	if c.Informers == nil {
		errs = append(errs, errors.New("nodelifecycle: Informers is required"))
	}
	if c.Recorder == nil {
		errs = append(errs, errors.New("nodelifecycle: Recorder is required"))
	}
	if c.GracePeriod < 0 || c.StartupGracePeriod < 0 || c.MonitorPeriod < 0 {
		errs = append(errs, errors.New("nodelifecycle: periods must not be negative"))
	}
	if c.NotReadyTolerationSeconds < 0 || c.UnreachableTolerationSeconds < 0 {
		errs = append(errs, errors.New("nodelifecycle: toleration seconds must not be negative"))
	}
	return errors.Join(errs...)
}
