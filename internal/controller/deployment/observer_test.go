package deployment

import (
	"context"
	"fmt"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// observer watches a namespace's pods and ReplicaSets and checks bounds
// after every event it sees: the test's view of "every moment".
type observer struct {
	mu         sync.Mutex
	pods       map[string]*corev1.Pod
	rss        map[string]*appsv1.ReplicaSet
	events     int
	violations []string
	checkPods  func(pods map[string]*corev1.Pod) error
	checkRSs   func(rss map[string]*appsv1.ReplicaSet) error
}

// observe starts an observer; it stops when the test ends.
func (e *env) observe(t *testing.T, checkPods func(map[string]*corev1.Pod) error, checkRSs func(map[string]*appsv1.ReplicaSet) error) *observer {
	t.Helper()
	o := &observer{pods: map[string]*corev1.Pod{}, rss: map[string]*appsv1.ReplicaSet{}, checkPods: checkPods, checkRSs: checkRSs}
	pods, err := e.client.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rss, err := e.client.AppsV1().ReplicaSets(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		o.pods[pods.Items[i].Name] = &pods.Items[i]
	}
	for i := range rss.Items {
		o.rss[rss.Items[i].Name] = &rss.Items[i]
	}
	o.check()
	ctx, cancel := context.WithCancel(e.ctx)
	pw, err := e.client.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: pods.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := e.client.AppsV1().ReplicaSets(e.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rss.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev, ok := <-pw.ResultChan():
				if !ok || ctx.Err() != nil {
					return
				}
				o.apply(ev)
			case ev, ok := <-rw.ResultChan():
				if !ok || ctx.Err() != nil {
					return
				}
				o.apply(ev)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		pw.Stop()
		rw.Stop()
		<-done
		o.report(t) // also when the test stopped early
	})
	return o
}

func (o *observer) apply(ev watch.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch obj := ev.Object.(type) {
	case *corev1.Pod:
		if ev.Type == watch.Deleted {
			delete(o.pods, obj.Name)
		} else {
			o.pods[obj.Name] = obj
		}
	case *appsv1.ReplicaSet:
		if ev.Type == watch.Deleted {
			delete(o.rss, obj.Name)
		} else {
			o.rss[obj.Name] = obj
		}
	case *metav1.Status:
		o.violations = append(o.violations, fmt.Sprintf("watch error: %s", obj.Message))
		return
	default:
		return
	}
	o.events++
	o.check()
}

func (o *observer) check() {
	if o.checkPods != nil {
		if err := o.checkPods(o.pods); err != nil {
			o.violations = append(o.violations, fmt.Sprintf("after event %d: %v", o.events, err))
		}
	}
	if o.checkRSs != nil {
		if err := o.checkRSs(o.rss); err != nil {
			o.violations = append(o.violations, fmt.Sprintf("after event %d: %v", o.events, err))
		}
	}
}

// report fails the test for every violation not reported yet.
func (o *observer) report(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, v := range o.violations {
		t.Error(v)
	}
	o.violations = nil
}

// seen reports the violations so far and returns how many events were
// checked.
func (o *observer) seen(t *testing.T) int {
	t.Helper()
	o.report(t)
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.events
}
