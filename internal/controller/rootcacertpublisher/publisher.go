// Package rootcacertpublisher keeps a ConfigMap "kube-root-ca.crt" holding
// the cluster CA certificate in every active namespace, as
// kube-controller-manager's root-ca-cert-publisher does: pods mount it
// (the kube-api-access volume) to verify the API server when they reach
// it through the kubernetes Service. Changes to the ConfigMap's data are
// put back; its labels and annotations are left to users.
package rootcacertpublisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"kite/internal/controller/internal/ctrlutil"
)

const (
	// ConfigMapName is the ConfigMap every namespace gets.
	ConfigMapName = "kube-root-ca.crt"
	// CAKey is its key holding the CA certificate (PEM).
	CAKey = "ca.crt"
	// descriptionAnnotation tells readers what the ConfigMap is for.
	descriptionAnnotation = "kubernetes.io/description"
	description           = "The cluster CA certificate, for verifying the API server reached at kubernetes.default.svc or its " +
		"Service IP. Kept by kite's root CA publisher; edits to its data are undone."
)

// Config wires the controller.
type Config struct {
	// Client writes ConfigMaps. Required.
	Client kubernetes.Interface
	// Informers supplies the Namespace and ConfigMap informers. Required;
	// Run starts the informers it registered.
	Informers informers.SharedInformerFactory
	// RootCA is the cluster CA certificate, PEM. Required.
	RootCA []byte
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
	if len(bytes.TrimSpace(c.RootCA)) == 0 {
		errs = append(errs, errors.New("root CA certificate is required"))
	}
	if c.Workers < 0 {
		errs = append(errs, errors.New("workers must not be negative"))
	}
	return errors.Join(errs...)
}

// Controller publishes the root CA in every namespace.
type Controller struct {
	cfg        Config
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
	synced     []cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[string]
}

// New checks cfg and registers the controller's informer handlers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("root CA publisher: %w", err)
	}
	cfg.Workers = max(cfg.Workers, 1)
	nsInf := cfg.Informers.Core().V1().Namespaces()
	cmInf := cfg.Informers.Core().V1().ConfigMaps()
	c := &Controller{
		cfg:        cfg,
		namespaces: nsInf.Lister(),
		configMaps: cmInf.Lister(),
		synced:     []cache.InformerSynced{nsInf.Informer().HasSynced, cmInf.Informer().HasSynced},
		queue:      ctrlutil.NewQueue[string]("root-ca-cert-publisher", 10*time.Millisecond, 5*time.Minute),
	}
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
	enqueueCM := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
			c.queue.Add(cm.Namespace)
		}
	}
	if _, err := cmInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { enqueueCM(cur) }, DeleteFunc: enqueueCM,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the caches, then works until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("root-ca-cert-publisher")
	ctx = klog.NewContext(ctx, log)
	c.cfg.Informers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return ctx.Err()
	}
	log.Info("starting")
	ctrlutil.Work(ctx, c.queue, c.cfg.Workers, c.syncNamespace)
	return nil
}

// syncNamespace creates the namespace's ConfigMap, or puts its data back.
func (c *Controller) syncNamespace(ctx context.Context, name string) error {
	ns, err := c.namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		return nil
	}
	want := map[string]string{CAKey: string(c.cfg.RootCA)}
	cm, err := c.configMaps.ConfigMaps(name).Get(ConfigMapName)
	switch {
	case apierrors.IsNotFound(err):
		_, err := c.cfg.Client.CoreV1().ConfigMaps(name).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Annotations: map[string]string{descriptionAnnotation: description}},
			Data:       want,
		}, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return fmt.Errorf("create configmap %s/%s: %w", name, ConfigMapName, err)
	case err != nil:
		return err
	}
	if maps.Equal(cm.Data, want) && len(cm.BinaryData) == 0 {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data, cm.BinaryData = want, nil
	if _, err := c.cfg.Client.CoreV1().ConfigMaps(name).Update(ctx, cm, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update configmap %s/%s: %w", name, ConfigMapName, err)
	}
	return nil
}
