package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The crash-loop sequence: at once, 10 s, 20 s, 40 s, … capped at 5 min,
// and from the start again after an instance ran 10 minutes.
func TestRestartDelay(t *testing.T) {
	step := 0
	var got []time.Duration
	for range 9 {
		var d time.Duration
		d, step = restartDelay(step, time.Second)
		got = append(got, d)
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second, 300 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if d, next := restartDelay(step, 10*time.Minute); d != 0 || next != 1 {
		t.Errorf("after 10 minutes running: %v, step %d", d, next)
	}
	if d, _ := restartDelay(1000, time.Second); d != backoffMax {
		t.Errorf("large step: %v", d)
	}
}

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		init   bool
		code   int
		want   bool
	}{
		{corev1.RestartPolicyAlways, false, 0, true},
		{corev1.RestartPolicyAlways, false, 1, true},
		{corev1.RestartPolicyAlways, true, 0, false},
		{corev1.RestartPolicyAlways, true, 1, true},
		{corev1.RestartPolicyOnFailure, false, 0, false},
		{corev1.RestartPolicyOnFailure, false, 137, true},
		{corev1.RestartPolicyNever, false, 1, false},
		{corev1.RestartPolicyNever, true, 1, false},
	} {
		if got := shouldRestart(tc.policy, tc.init, tc.code); got != tc.want {
			t.Errorf("%s init=%v exit %d: %v", tc.policy, tc.init, tc.code, got)
		}
	}
}

func TestRetryBackoff(t *testing.T) {
	var r retryBackoff
	now := time.Unix(1000, 0)
	var got []time.Duration
	for range 7 {
		r.fail(now)
		got = append(got, r.until.Sub(now))
	}
	if got[0] != 10*time.Second || got[1] != 20*time.Second || got[6] != 5*time.Minute {
		t.Errorf("%v", got)
	}
}
