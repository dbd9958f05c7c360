package agent

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"kite/internal/runtime"
)

// Crash-loop back-off, as kubelet does it: a container that exits and is
// to be restarted is restarted at once the first time, then 10 s after
// its exit, then 20 s, 40 s, … up to 5 minutes; an instance that ran for
// 10 minutes starts the sequence again. Kubelet keeps the sequence in
// memory; kite keeps it on each instance (labelBackoff: the step it was
// started at), so an agent restart neither resets nor repeats it.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	backoffReset   = 10 * time.Minute
)

// restartDelay is how long after an instance's exit the next one may
// start, and the step the next one carries. step is the instance's own.
func restartDelay(step int, ran time.Duration) (delay time.Duration, next int) {
	if step <= 0 || ran >= backoffReset {
		return 0, 1
	}
	delay = backoffInitial
	for i := 1; i < step && delay < backoffMax; i++ {
		delay *= 2
	}
	return min(delay, backoffMax), step + 1
}

// shouldRestart says whether an exited instance is to be followed by
// another: init containers until they succeed (never under
// restartPolicy Never), others as restartPolicy says.
func shouldRestart(policy corev1.RestartPolicy, isInit bool, exitCode int) bool {
	switch {
	case policy == corev1.RestartPolicyNever:
		return false
	case isInit || policy == corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// ranFor is how long an exited instance ran.
func ranFor(c *runtime.ContainerStatus) time.Duration {
	if c.StartedAt.IsZero() || c.FinishedAt.Before(c.StartedAt) {
		return 0
	}
	return c.FinishedAt.Sub(c.StartedAt)
}

// retryBackoff spaces out retries of what is not an instance's exit
// (image pulls, configuration errors): 10 s doubling to 5 minutes, in
// memory like kubelet's image pull back-off.
type retryBackoff struct {
	until time.Time
	delay time.Duration
}

func (r *retryBackoff) fail(now time.Time) {
	if r.delay == 0 {
		r.delay = backoffInitial
	} else {
		r.delay = min(2*r.delay, backoffMax)
	}
	r.until = now.Add(r.delay)
}
