package image

import (
	"errors"
	"slices"
	"testing"
)

// TestFakePolicies: the Fake answers pulls as the Store does.
func TestFakePolicies(t *testing.T) {
	f := NewFake()
	ctx := testCtx(t)
	if err := f.EnsureBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	f.AddRemote("example.com/app:1", Image{Layers: []Layer{{DiffID: "sha256:aa"}, {DiffID: "sha256:bb"}}})

	if img, err := f.Pull(ctx, "gcr.io/kuar-demo/kuard-amd64:1", PullAlways, nil); err != nil || img.Builtin != "kuard" ||
		!slices.Equal(img.Config.Entrypoint, []string{"/kuard"}) {
		t.Errorf("built-in kuard, Always: %+v %v", img, err)
	}
	if _, err := f.Pull(ctx, "example.com/app:1", PullNever, nil); !errors.Is(err, ErrImageNeverPull) {
		t.Errorf("Never, absent: %v", err)
	}
	if _, err := f.Pull(ctx, "example.com/other:1", PullIfNotPresent, nil); !IsPullError(err) {
		t.Errorf("unknown remote: %v", err)
	}
	if _, err := f.Pull(ctx, "example.com/app:1", PullIfNotPresent, nil); err != nil {
		t.Fatal(err)
	}
	dirs, err := f.Unpack(ctx, "example.com/app:1")
	if err != nil || !slices.Equal(dirs, []string{"/fake/images/layers/sha256:aa", "/fake/images/layers/sha256:bb"}) {
		t.Errorf("unpack: %v %v", dirs, err)
	}
	f.FailNext("Unpack", errors.New("disk full"))
	if _, err := f.Unpack(ctx, "example.com/app:1"); err == nil || err.Error() != "disk full" {
		t.Errorf("injected error: %v", err)
	}
	if _, err := f.Get("busybox"); err != nil {
		t.Errorf("busybox: %v", err)
	}
	want := []string{"EnsureBuiltins", "Pull gcr.io/kuar-demo/kuard-amd64:1 Always", "Pull example.com/app:1 Never",
		"Pull example.com/other:1 IfNotPresent", "Pull example.com/app:1 IfNotPresent", "Unpack example.com/app:1",
		"Unpack example.com/app:1", "Get busybox"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls\n%q\nwant\n%q", got, want)
	}
}
