package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// runcState is the part of `runc state` / `runc list --format json` kite
// reads.
type runcState struct {
	ID     string    `json:"id"`
	Pid    int       `json:"pid"`
	Status string    `json:"status"` // created, running, pausing, paused, stopped
	Bundle string    `json:"bundle"`
	Create time.Time `json:"created"`
}

// errRuncNoContainer: runc does not know the container.
var errRuncNoContainer = errors.New("runc: container does not exist")

// runc runs the runc binary with kite's state root and returns its
// output; a failure carries runc's message.
func (r *Runtime) runc(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.cfg.RuncPath, append([]string{"--root", r.cfg.RuncRoot}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "does not exist") {
			return out, fmt.Errorf("runc %s: %w", args[0], errRuncNoContainer)
		}
		return out, fmt.Errorf("runc %s: %w", args[0], runcStateError(fmt.Sprintf("%v: %s", err, msg)))
	}
	return out, nil
}

func (r *Runtime) runcState(ctx context.Context, id string) (runcState, error) {
	out, err := r.runc(ctx, "state", id)
	if err != nil {
		return runcState{}, err
	}
	var st runcState
	if err := json.Unmarshal(out, &st); err != nil {
		return runcState{}, fmt.Errorf("runc state %s: %w", id, err)
	}
	return st, nil
}

// runcList returns runc's state of every container under kite's root.
func (r *Runtime) runcList(ctx context.Context) (map[string]runcState, error) {
	out, err := r.runc(ctx, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var list []runcState
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &list); err != nil {
			return nil, fmt.Errorf("runc list: %w", err)
		}
	}
	m := make(map[string]runcState, len(list))
	for _, st := range list {
		m[st.ID] = st
	}
	return m, nil
}

// runcStateError turns runc's complaints about a container's state
// ("cannot exec in a stopped container", "cannot start an already running
// container") into ErrWrongState.
func runcStateError(msg string) error {
	for _, s := range []string{"stopped", "already running", "not running", "paused"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w: %s", ErrWrongState, msg)
		}
	}
	return errors.New(msg)
}
