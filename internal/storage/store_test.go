package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Progress: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return New(e.Client(), NewCodec(scheme))
}

func cm(name string, data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Data: map[string]string{"k": data}}
}

func newCM() runtime.Object { return &corev1.ConfigMap{} }

func rvOf(t *testing.T, o runtime.Object) int64 {
	t.Helper()
	rv, err := strconv.ParseInt(o.(*corev1.ConfigMap).ResourceVersion, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion: %v", err)
	}
	return rv
}

func TestCreateGetUpdateDelete(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	key := "/registry/configmaps/default/a"
	obj := cm("a", "1")
	if err := s.Create(ctx, key, obj, 0); err != nil {
		t.Fatal(err)
	}
	rv1 := rvOf(t, obj)
	if err := s.Create(ctx, key, cm("a", "2"), 0); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}
	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if got.Data["k"] != "1" || rvOf(t, got) != rv1 {
		t.Fatalf("get: %+v", got)
	}
	// A no-op update writes nothing and keeps the resourceVersion.
	same, err := s.GuaranteedUpdate(ctx, key, newCM, func(cur runtime.Object) (runtime.Object, error) { return cur, nil })
	if err != nil || rvOf(t, same) != rv1 {
		t.Fatalf("no-op update: rv %v err %v", same, err)
	}
	upd, err := s.GuaranteedUpdate(ctx, key, newCM, func(cur runtime.Object) (runtime.Object, error) {
		c := cur.(*corev1.ConfigMap)
		c.Data["k"] = "2"
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rvOf(t, upd) <= rv1 {
		t.Fatalf("update did not advance resourceVersion: %d <= %d", rvOf(t, upd), rv1)
	}
	out := &corev1.ConfigMap{}
	refuse := errors.New("refused")
	if err := s.Delete(ctx, key, out, func(runtime.Object) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("delete with failing check: %v", err)
	}
	if err := s.Delete(ctx, key, out, nil); err != nil {
		t.Fatal(err)
	}
	if out.Data["k"] != "2" {
		t.Fatalf("deleted object: %+v", out)
	}
	if err := s.Get(ctx, key, got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := s.GuaranteedUpdate(ctx, key, newCM, func(cur runtime.Object) (runtime.Object, error) { return cur, nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update after delete: %v", err)
	}
}

func TestListPaging(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		name := fmt.Sprintf("cm%d", i)
		if err := s.Create(ctx, "/registry/configmaps/default/"+name, cm(name, strconv.Itoa(i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	// A neighbouring namespace must not leak into the prefix.
	if err := s.Create(ctx, "/registry/configmaps/default2/x", cm("x", "x"), 0); err != nil {
		t.Fatal(err)
	}
	prefix := "/registry/configmaps/default/"
	var names []string
	opts := ListOptions{Limit: 3}
	var firstRev int64
	for page := 0; ; page++ {
		res, err := s.List(ctx, prefix, newCM, opts)
		if err != nil {
			t.Fatal(err)
		}
		if page == 0 {
			firstRev = res.Revision
			if res.Remaining == nil || *res.Remaining != 4 {
				t.Fatalf("remaining after first page: %v", res.Remaining)
			}
			// Written after the first page: not in this consistent list.
			if err := s.Create(ctx, prefix+"cm9", cm("cm9", "9"), 0); err != nil {
				t.Fatal(err)
			}
		}
		if res.Revision != firstRev {
			t.Fatalf("page %d at revision %d, first at %d", page, res.Revision, firstRev)
		}
		for _, o := range res.Items {
			names = append(names, o.(*corev1.ConfigMap).Name)
		}
		if res.Continue == "" {
			break
		}
		opts.Continue = res.Continue
	}
	if fmt.Sprint(names) != "[cm0 cm1 cm2 cm3 cm4 cm5 cm6]" {
		t.Fatalf("paged names: %v", names)
	}
	res, err := s.List(ctx, prefix, newCM, ListOptions{Limit: 2, Match: func(o runtime.Object) bool {
		return o.(*corev1.ConfigMap).Data["k"] >= "5"
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 2 || res.Continue == "" || res.Remaining != nil {
		t.Fatalf("filtered page: %d items, continue %q, remaining %v", len(res.Items), res.Continue, res.Remaining)
	}
	if _, err := s.List(ctx, prefix, newCM, ListOptions{Continue: "garbage"}); !errors.Is(err, ErrBadContinue) {
		t.Fatalf("bad continue: %v", err)
	}
}

func TestWatchFilterAndCompaction(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := "/registry/configmaps/default/"
	start, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	match := func(o runtime.Object) bool { return o.(*corev1.ConfigMap).Data["k"] == "yes" }
	ch := s.Watch(ctx, prefix, start, newCM, match)
	set := func(v string) {
		if _, err := s.GuaranteedUpdate(ctx, prefix+"a", newCM, func(cur runtime.Object) (runtime.Object, error) {
			cur.(*corev1.ConfigMap).Data["k"] = v
			return cur, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(ctx, prefix+"a", cm("a", "no"), 0); err != nil {
		t.Fatal(err)
	}
	set("yes") // starts matching: Added
	set("yes") // unchanged: no event
	if err := s.Create(ctx, prefix+"b", cm("b", "yes"), 0); err != nil {
		t.Fatal(err)
	}
	set("no") // stops matching: Deleted
	if err := s.Delete(ctx, prefix+"b", &corev1.ConfigMap{}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADDED a", "ADDED b", "DELETED a", "DELETED b"}
	var got []string
	for len(got) < len(want) {
		select {
		case e := <-ch:
			if e.Type == watch.Bookmark {
				continue
			}
			if e.Type == watch.Error {
				t.Fatal(e.Err)
			}
			got = append(got, fmt.Sprintf("%s %s", e.Type, e.Object.(*corev1.ConfigMap).Name))
		case <-ctx.Done():
			t.Fatalf("events so far %v, want %v", got, want)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Bookmarks carry the store's revision.
	for {
		e := <-ch
		if e.Type == watch.Bookmark {
			if e.Revision <= start {
				t.Fatalf("bookmark revision %d not after %d", e.Revision, start)
			}
			break
		}
	}

	now, _ := s.Revision(ctx)
	if err := s.Compact(ctx, now); err != nil {
		t.Fatal(err)
	}
	e := <-s.Watch(ctx, prefix, start, newCM, nil)
	if e.Type != watch.Error || !errors.Is(e.Err, ErrCompacted) {
		t.Fatalf("watch from compacted revision: %+v", e)
	}
	if _, err := s.List(ctx, prefix, newCM, ListOptions{Revision: start, Exact: true}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("list at compacted revision: %v", err)
	}
}
