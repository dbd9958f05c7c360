package controllerref

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var rsKind = corev1.SchemeGroupVersion.WithKind("ReplicationController")

func TestPatches(t *testing.T) {
	owner := &metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "owner-uid"}
	p, err := AdoptPatch(owner, rsKind, "pod-uid")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ReplicationController","name":"web","uid":"owner-uid","controller":true,"blockOwnerDeletion":true}],"uid":"pod-uid"}}`
	if string(p) != want {
		t.Errorf("adopt patch\n got %s\nwant %s", p, want)
	}
	p, err = ReleasePatch("owner-uid", "pod-uid")
	if err != nil {
		t.Fatal(err)
	}
	want = `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"owner-uid"}],"uid":"pod-uid"}}`
	if string(p) != want {
		t.Errorf("release patch\n got %s\nwant %s", p, want)
	}
}

func pod(name string, app string, owner types.UID) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), Labels: map[string]string{"app": app}}}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicationController", Name: "x", UID: owner, Controller: ptr.To(true)}}
	}
	return p
}

func TestClaim(t *testing.T) {
	owner := &metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "me"}
	var patched []string
	m := &Manager{Owner: owner, Kind: rsKind, Selector: labels.SelectorFromSet(labels.Set{"app": "web"}),
		Patch: func(_ context.Context, _, name string, _ []byte) error {
			patched = append(patched, name)
			return nil
		}}
	pods := []*corev1.Pod{
		pod("mine", "web", "me"),      // kept
		pod("orphan", "web", ""),      // adopted
		pod("strays", "db", "me"),     // released
		pod("theirs", "web", "other"), // left alone
		pod("unrelated", "db", ""),    // left alone
	}
	got, err := Claim(context.Background(), m, pods)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"mine", "orphan"}) || !slices.Equal(patched, []string{"orphan", "strays"}) {
		t.Errorf("claimed %v, patched %v", names, patched)
	}
}

func TestNoAdoptionWhenOwnerGoes(t *testing.T) {
	owner := &metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "me"}
	calls := 0
	m := &Manager{Owner: owner, Kind: rsKind, Selector: labels.SelectorFromSet(labels.Set{"app": "web"}),
		CanAdopt: func(context.Context) error { calls++; return errors.New("being deleted") },
		Patch:    func(context.Context, string, string, []byte) error { t.Error("patched"); return nil }}
	got, err := Claim(context.Background(), m, []*corev1.Pod{pod("a", "web", ""), pod("b", "web", "")})
	if err == nil || len(got) != 0 || calls != 1 {
		t.Errorf("claimed %d, err %v, CanAdopt called %d times", len(got), err, calls)
	}
}
