package apiserver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"kite/internal/storage"
)

// recorder collects what an informer's handlers saw.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...interface{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) has(e string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.events {
		if x == e {
			return true
		}
	}
	return false
}

func startInformer(t *testing.T, client kubernetes.Interface) (*recorder, cache.SharedIndexInformer, func()) {
	rec := &recorder{}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("default"))
	inf := f.Core().V1().ConfigMaps().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o interface{}) { rec.add("add %s=%s", o.(*corev1.ConfigMap).Name, o.(*corev1.ConfigMap).Data["k"]) },
		UpdateFunc: func(_, o interface{}) {
			rec.add("update %s=%s", o.(*corev1.ConfigMap).Name, o.(*corev1.ConfigMap).Data["k"])
		},
		DeleteFunc: func(o interface{}) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			rec.add("delete %s", o.(*corev1.ConfigMap).Name)
		},
	})
	stop := make(chan struct{})
	f.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	return rec, inf, func() { close(stop); f.Shutdown() }
}

func setCM(t *testing.T, client kubernetes.Interface, name, value string) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": value}}
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		cur, err := client.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Data = cm.Data
		if _, err := client.CoreV1().ConfigMaps("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
}

// An informer lists, then follows changes; across a server restart its
// watch resumes and the objects and resourceVersions carry on.
func TestInformerAcrossRestart(t *testing.T) {
	ts := startServer(t)
	setCM(t, ts.client, "before", "1")
	rec, _, stop := startInformer(t, ts.client)
	defer stop()
	waitFor(t, 10*time.Second, "initial add", func() bool { return rec.has("add before=1") })
	setCM(t, ts.client, "a", "1")
	setCM(t, ts.client, "a", "2")
	if err := ts.client.CoreV1().ConfigMaps("default").Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"add a=1", "update a=2", "delete a"} {
		waitFor(t, 10*time.Second, e, func() bool { return rec.has(e) })
	}
	before, err := ts.client.CoreV1().ConfigMaps("default").Get(context.Background(), "before", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	ts.stop()
	ts2 := startServerAt(t, ts.dir, ts.addr)
	after, err := ts2.client.CoreV1().ConfigMaps("default").Get(context.Background(), "before", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion || after.UID != before.UID {
		t.Fatalf("object changed across restart: %s/%s -> %s/%s", before.UID, before.ResourceVersion, after.UID, after.ResourceVersion)
	}
	setCM(t, ts2.client, "b", "1")
	waitFor(t, 30*time.Second, "event after restart", func() bool { return rec.has("add b=1") })
	b, _ := ts2.client.CoreV1().ConfigMaps("default").Get(context.Background(), "b", metav1.GetOptions{})
	rvB, _ := strconv.Atoi(b.ResourceVersion)
	rvBefore, _ := strconv.Atoi(before.ResourceVersion)
	if rvB <= rvBefore {
		t.Fatalf("resourceVersions went backwards across restart: %d <= %d", rvB, rvBefore)
	}
}

// A watch from a compacted resourceVersion ends with 410 Gone; an informer
// relists and carries on.
func TestWatchGoneAfterCompaction(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	setCM(t, ts.client, "a", "1")
	list, err := ts.client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := list.ResourceVersion
	setCM(t, ts.client, "a", "2")
	setCM(t, ts.client, "a", "3")
	rev, err := ts.srv.store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.store.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	w, err := ts.client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: old})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case e := <-w.ResultChan():
		st, ok := e.Object.(*metav1.Status)
		if e.Type != watch.Error || !ok || st.Code != 410 {
			t.Fatalf("want an ERROR event with 410, got %s %+v", e.Type, e.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event from a watch at a compacted revision")
	}
	if _, err := ts.client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{ResourceVersion: old, ResourceVersionMatch: metav1.ResourceVersionMatchExact}); !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("exact list at a compacted revision: got %v, want 410", err)
	}

	// Bookmarks: asked for, they arrive, carrying a resourceVersion.
	w2, err := ts.client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(rev, 10), AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case e := <-w2.ResultChan():
			if e.Type == watch.Bookmark {
				if e.Object.(*corev1.ConfigMap).ResourceVersion == "" {
					t.Fatal("bookmark without resourceVersion")
				}
				got = true
			}
		case <-deadline:
			t.Fatal("no bookmark within 10s")
		}
	}
}

// sendInitialEvents (client-go's WatchList) streams the current objects,
// then a bookmark marking their end.
func TestWatchListInitialEvents(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	setCM(t, ts.client, "a", "1")
	setCM(t, ts.client, "b", "1")
	yes := true
	w, err := ts.client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{
		SendInitialEvents: &yes, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var added []string
	for {
		select {
		case e := <-w.ResultChan():
			cm := e.Object.(*corev1.ConfigMap)
			if e.Type == watch.Added {
				added = append(added, cm.Name)
				continue
			}
			if e.Type == watch.Bookmark && cm.Annotations[metav1.InitialEventsAnnotationKey] == "true" {
				if fmt.Sprint(added) != "[a b]" {
					t.Fatalf("initial events %v, want [a b]", added)
				}
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no initial-events-end bookmark; got %v", added)
		}
	}
}

// An informer whose watch position was compacted away while it could not
// reach the server relists on 410 Gone and catches up.
func TestInformerRelistAfterGone(t *testing.T) {
	ctx := context.Background()
	etcdDir := t.TempDir()
	e, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{Dir: etcdDir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	endpoint := "unix://" + etcdDir + "/client.sock"
	dir := t.TempDir()
	a := startServerWith(t, dir, "127.0.0.1:0", []string{endpoint})
	setCM(t, a.client, "keep", "1")
	setCM(t, a.client, "gone", "1")
	rec, _, stop := startInformer(t, a.client)
	defer stop()
	waitFor(t, 10*time.Second, "initial adds", func() bool { return rec.has("add keep=1") && rec.has("add gone=1") })

	// While the server is down, a second server changes things and
	// history is compacted past the informer's position.
	a.stop()
	b := startServerWith(t, t.TempDir(), "127.0.0.1:0", []string{endpoint})
	if err := b.client.CoreV1().ConfigMaps("default").Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	setCM(t, b.client, "new", "1")
	setCM(t, b.client, "new", "2")
	rev, err := b.srv.store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.srv.store.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	startServerWith(t, dir, a.addr, []string{endpoint})
	waitFor(t, 60*time.Second, "relist after 410", func() bool { return rec.has("add new=2") && rec.has("delete gone") })
}
