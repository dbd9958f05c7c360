package dns

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// startInformers feeds the store from Services and EndpointSlices and
// marks the server ready once both have synced. Pods are not watched:
// pod records are answered from the name alone (lookup.go).
func (s *Server) startInformers(ctx context.Context) error {
	log := klog.FromContext(ctx)
	// The informers' own caches hold trimmed objects: only the fields
	// records are built from, so the whole Service (annotations,
	// managedFields, status) is never kept.
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithTransform(trim))
	svcInf := factory.Core().V1().Services().Informer()
	sliceInf := factory.Discovery().V1().EndpointSlices().Informer()

	svcReg, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.setService(obj) },
		UpdateFunc: func(_, obj any) { s.setService(obj) },
		DeleteFunc: func(obj any) {
			if svc, ok := unwrap(obj).(*corev1.Service); ok {
				s.store.DeleteService(ServiceRecord(svc).Namespace, ServiceRecord(svc).Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("service informer handler: %w", err)
	}
	sliceReg, err := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.setSlice(obj) },
		UpdateFunc: func(_, obj any) { s.setSlice(obj) },
		DeleteFunc: func(obj any) {
			if slice, ok := unwrap(obj).(*discoveryv1.EndpointSlice); ok {
				if ns, svc, ok := SliceService(slice); ok {
					s.store.DeleteEndpoints(ns, svc, slice.Name)
				}
			}
		},
	})
	if err != nil {
		return fmt.Errorf("endpointslice informer handler: %w", err)
	}
	factory.Start(ctx.Done())
	go func() {
		// Ready only when the handlers (not just the caches) have seen
		// every listed object: before that, an existing Service would be
		// answered NXDOMAIN.
		if cache.WaitForCacheSync(ctx.Done(), svcReg.HasSynced, sliceReg.HasSynced) {
			s.ready.Store(true)
			log.Info("informers synced", "services", s.store.Len())
		}
	}()
	go func() { <-ctx.Done(); factory.Shutdown() }()
	return nil
}

func (s *Server) setService(obj any) {
	if svc, ok := obj.(*corev1.Service); ok {
		s.store.SetService(ServiceRecord(svc))
	}
}

func (s *Server) setSlice(obj any) {
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	if ns, svc, ok := SliceService(slice); ok {
		s.store.SetEndpoints(ns, svc, slice.Name, EndpointRecords(slice))
	}
}

func unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

// trim keeps the fields DNS reads. It runs on every object the informers
// receive, before they are cached.
func trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		t := &corev1.Service{ObjectMeta: trimMeta(o.ObjectMeta)}
		if v, ok := o.Annotations[tolerateUnreadyAnnotation]; ok {
			t.Annotations = map[string]string{tolerateUnreadyAnnotation: v}
		}
		t.Spec.Type = o.Spec.Type
		t.Spec.ClusterIP = o.Spec.ClusterIP
		t.Spec.ClusterIPs = o.Spec.ClusterIPs
		t.Spec.ExternalName = o.Spec.ExternalName
		t.Spec.PublishNotReadyAddresses = o.Spec.PublishNotReadyAddresses
		for _, p := range o.Spec.Ports {
			t.Spec.Ports = append(t.Spec.Ports, corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port})
		}
		return t, nil
	case *discoveryv1.EndpointSlice:
		t := &discoveryv1.EndpointSlice{ObjectMeta: trimMeta(o.ObjectMeta), AddressType: o.AddressType}
		if v, ok := o.Labels[discoveryv1.LabelServiceName]; ok {
			t.Labels = map[string]string{discoveryv1.LabelServiceName: v}
		}
		for _, ep := range o.Endpoints {
			t.Endpoints = append(t.Endpoints, discoveryv1.Endpoint{
				Addresses:  ep.Addresses,
				Hostname:   ep.Hostname,
				Conditions: discoveryv1.EndpointConditions{Ready: ep.Conditions.Ready},
			})
		}
		return t, nil
	}
	return obj, nil
}

func trimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
}
