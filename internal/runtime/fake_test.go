package runtime

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	var rt Interface = f

	sb, err := rt.CreateSandbox(ctx, SandboxConfig{ID: "pod", Hostname: "kuard", Labels: map[string]string{"uid": "u1"}})
	if err != nil || sb.NetNSPath == "" {
		t.Fatalf("sandbox %+v, %v", sb, err)
	}
	if _, err := rt.CreateSandbox(ctx, SandboxConfig{ID: "pod", Hostname: "kuard"}); !IsAlreadyExists(err) {
		t.Errorf("duplicate sandbox: %v", err)
	}
	if err := rt.CreateContainer(ctx, ContainerConfig{ID: "c", SandboxID: "nope", Args: []string{"x"}, LowerDirs: []string{"/l"}}); !IsNotFound(err) {
		t.Errorf("container in a missing sandbox: %v", err)
	}
	cfg := ContainerConfig{ID: "c", SandboxID: "pod", Args: []string{"/kuard"}, LowerDirs: []string{"/l"}, Env: []string{"A=1"}}
	if err := rt.CreateContainer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.ContainerConfig("c"); !slices.Equal(got.Env, cfg.Env) {
		t.Errorf("recorded config %+v", got)
	}
	if _, err := rt.Exec(ctx, "c", ExecConfig{Cmd: []string{"true"}}); !errors.Is(err, ErrWrongState) {
		t.Errorf("exec in a created container: %v", err)
	}
	if err := rt.StartContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, "c"); !errors.Is(err, ErrWrongState) {
		t.Errorf("second start: %v", err)
	}
	f.ExecFunc = func(id string, cfg ExecConfig) (int, error) { return 3, nil }
	if code, err := rt.Exec(ctx, "c", ExecConfig{Cmd: []string{"false"}}); code != 3 || err != nil {
		t.Errorf("exec: %d, %v", code, err)
	}
	if err := f.Exit("c", 1, true); err != nil {
		t.Fatal(err)
	}
	st, _ := rt.ContainerStatus(ctx, "c")
	if st.State != StateExited || st.ExitCode != 1 || !st.OOMKilled || st.Pid != 0 {
		t.Errorf("after Exit: %+v", st)
	}

	// Stop: SIGTERM honoured with a grace, SIGKILL without.
	for grace, want := range map[time.Duration]int{time.Second: 0, 0: 137} {
		cfg.ID = "s" + grace.String()
		rt.CreateContainer(ctx, cfg)
		rt.StartContainer(ctx, cfg.ID)
		if err := rt.StopContainer(ctx, cfg.ID, grace); err != nil {
			t.Fatal(err)
		}
		if st, _ := rt.ContainerStatus(ctx, cfg.ID); st.ExitCode != want {
			t.Errorf("stop with grace %v: exit %d, want %d", grace, st.ExitCode, want)
		}
	}

	f.FailNext("RemoveContainer", errors.New("boom"))
	if err := rt.RemoveContainer(ctx, "c"); err == nil || err.Error() != "boom" {
		t.Errorf("injected error: %v", err)
	}
	if err := rt.RemoveContainer(ctx, "c"); err != nil {
		t.Error(err)
	}
	if err := rt.RemoveContainer(ctx, "c"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if list, _ := rt.ListContainers(ctx); len(list) != 2 {
		t.Errorf("containers: %+v", list)
	}
	calls := f.Calls()
	if calls[0] != "CreateSandbox pod" || !slices.Contains(calls, "StopContainer s1s 1s") || !slices.Contains(calls, "Exec c [false]") {
		t.Errorf("calls: %q", calls)
	}
}
