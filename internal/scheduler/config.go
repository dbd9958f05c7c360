package scheduler

import (
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Defaults.
const (
	// DefaultUnschedulableRetry is upstream's podMaxInUnschedulablePodsDuration:
	// an unschedulable pod is tried again after this long even if no node or
	// pod event suggested it might fit now.
	DefaultUnschedulableRetry = 5 * time.Minute
)

// Config wires the scheduler.
type Config struct {
	// Client binds pods and writes their status.
	Client kubernetes.Interface
	// Informers supplies the pod and node caches; the caller starts it after
	// New has registered the handlers.
	Informers informers.SharedInformerFactory
	// Recorder emits Scheduled and FailedScheduling events. Upstream's
	// source component is "default-scheduler".
	Recorder record.EventRecorder

	// SchedulerName selects the pods this scheduler places (their
	// spec.schedulerName). Default "default-scheduler".
	SchedulerName string
	// UnschedulableRetry is how long an unschedulable pod waits before it is
	// tried again when nothing in the cluster changed. Default 5m.
	UnschedulableRetry time.Duration
}

// withDefaults returns c with unset options filled in.
func (c Config) withDefaults() Config {
	if c.SchedulerName == "" {
		c.SchedulerName = corev1.DefaultSchedulerName
	}
	if c.UnschedulableRetry == 0 {
		c.UnschedulableRetry = DefaultUnschedulableRetry
	}
	return c
}

// Validate reports a missing dependency or a nonsensical option.
func (c Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("scheduler: Client is required"))
	}
	if c.Informers == nil {
		errs = append(errs, errors.New("scheduler: Informers is required"))
	}
	if c.Recorder == nil {
		errs = append(errs, errors.New("scheduler: Recorder is required"))
	}
	if c.UnschedulableRetry < 0 {
		errs = append(errs, errors.New("scheduler: UnschedulableRetry must not be negative"))
	}
	return errors.Join(errs...)
}
