// Package serviceaccount keeps a "default" ServiceAccount in every active
// namespace, re-creating it if it is deleted, as kube-controller-manager's
// serviceaccount controller does. Namespaces being deleted are left alone.
package serviceaccount

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
)

// DefaultServiceAccount is the account every namespace gets.
const DefaultServiceAccount = "default"

// Config wires the controller.
type Config struct {
	// Client creates ServiceAccounts. Required.
	Client kubernetes.Interface
	// Informers supplies the Namespace and ServiceAccount informers.
	// Required; Run starts the informers it registered.
	Informers informers.SharedInformerFactory
	// Recorder records events; nil records to the API as
	// serviceaccount-controller.
	Recorder record.EventRecorder
	// ServiceAccounts are the names ensured in every namespace (default
	// ["default"]).
	ServiceAccounts []string
	// Workers is how many namespaces sync in parallel (default 1).
	Workers int
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
	if c.Workers < 0 {
		errs = append(errs, errors.New("workers must not be negative"))
	}
	return errors.Join(errs...)
}

// Controller ensures the ServiceAccounts of every namespace.
type Controller struct {
	cfg        Config
	namespaces corelisters.NamespaceLister
	accounts   corelisters.ServiceAccountLister
	synced     []cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[string]
	recorder   record.EventRecorder
	stopRec    func()
}

// New checks cfg and registers the controller's informer handlers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("serviceaccount controller: %w", err)
	}
	if len(cfg.ServiceAccounts) == 0 {
		cfg.ServiceAccounts = []string{DefaultServiceAccount}
	}
	cfg.Workers = max(cfg.Workers, 1)
	nsInf := cfg.Informers.Core().V1().Namespaces()
	saInf := cfg.Informers.Core().V1().ServiceAccounts()
	c := &Controller{
		cfg:        cfg,
		namespaces: nsInf.Lister(),
		accounts:   saInf.Lister(),
		synced:     []cache.InformerSynced{nsInf.Informer().HasSynced, saInf.Informer().HasSynced},
		queue:      ctrlutil.NewQueue[string]("serviceaccount", 10*time.Millisecond, 5*time.Minute),
	}
	c.recorder, c.stopRec = ctrlutil.Recorder(cfg.Recorder, cfg.Client, "serviceaccount-controller")
	enqueueNS := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok {
			c.queue.Add(ns.Name)
		}
	}
	if _, err := nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueNS, UpdateFunc: func(_, cur any) { enqueueNS(cur) },
	}); err != nil {
		return nil, err
	}
	if _, err := saInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if sa, ok := obj.(*corev1.ServiceAccount); ok {
				c.queue.Add(sa.Namespace)
			}
		},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the caches, then works until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("serviceaccount-controller")
	ctx = klog.NewContext(ctx, log)
	defer c.stopRec()
	c.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return ctx.Err()
	}
	log.Info("starting", "serviceAccounts", c.cfg.ServiceAccounts)
	ctrlutil.Work(ctx, c.queue, c.cfg.Workers, c.syncNamespace)
	return nil
}

// syncNamespace creates the missing ServiceAccounts of an active namespace.
func (c *Controller) syncNamespace(ctx context.Context, name string) error {
	ns, err := c.namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceActive || ns.DeletionTimestamp != nil {
		return nil
	}
	var errs []error
	for _, sa := range c.cfg.ServiceAccounts {
		if _, err := c.accounts.ServiceAccounts(name).Get(sa); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		_, err := c.cfg.Client.CoreV1().ServiceAccounts(name).Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: name}}, metav1.CreateOptions{})
		switch {
		case err == nil:
			klog.FromContext(ctx).V(2).Info("created service account", "namespace", name, "serviceAccount", sa)
		case apierrors.IsAlreadyExists(err), apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		default:
			errs = append(errs, fmt.Errorf("create service account %s/%s: %w", name, sa, err))
		}
	}
	return errors.Join(errs...)
}
