package lbipam

import (
	"errors"
	"fmt"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Names other components and users see.
const (
	// DefaultClass is the spec.loadBalancerClass this controller serves
	// (and Services without a class).
	DefaultClass = "kite.dev/lb"
	// AnnotationIP requests an address; it wins over spec.loadBalancerIP
	// (deprecated upstream, still honoured).
	AnnotationIP = "lb.kite.dev/ip"
	// AnnotationAllowSharedIP opts a Service into sharing its address
	// with the other Services carrying the same value.
	AnnotationAllowSharedIP = "lb.kite.dev/allow-shared-ip"
	// Name is the controller's name: its event source and log name.
	Name = "lbipam-controller"
)

// Event reasons.
const (
	EventAllocationFailed = "AllocationFailed"
	EventIPAllocated      = "IPAllocated"
)

// Config wires the controller.
type Config struct {
	// Client writes services/status. Required.
	Client kubernetes.Interface
	// Informers supplies the Service informer. Required; Run starts it.
	Informers informers.SharedInformerFactory
	// Recorder records events on Services; nil records to the API as
	// lbipam-controller.
	Recorder record.EventRecorder
	// Pool is the comma-separated address pool: CIDRs, first-last ranges
	// or single addresses (ParsePool). Required.
	Pool string
	// Class is the spec.loadBalancerClass served, besides none (default
	// kite.dev/lb).
	Class string
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if c.Informers == nil {
		errs = append(errs, errors.New("informer factory is required"))
	}
	if _, err := ParsePool(c.Pool); err != nil {
		errs = append(errs, fmt.Errorf("pool %q: %w", c.Pool, err))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Class == "" {
		c.Class = DefaultClass
	}
}
