package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// iptBackend applies renderIPTables with iptables-restore --noflush: each
// sync rewrites all of kite's chains (the iptables way; iptables has no
// per-element updates) in one atomic restore per table.
type iptBackend struct {
	cfg      Config
	existing *iptExisting // nil: unknown, read iptables-save first
	last     []byte
}

func newIPTBackend(cfg Config) (*iptBackend, error) {
	for _, tool := range []string{"iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("iptables mode: %w", err)
		}
	}
	return &iptBackend{cfg: cfg}, nil
}

// Sync rewrites every chain (iptables-restore has no smaller unit than a
// chain, and the S16 layout puts every Service in KUBE-SERVICES), so which
// Services changed does not matter.
func (b *iptBackend) Sync(ctx context.Context, m *Model, full bool, _ []ServiceKey) (SyncResult, error) {
	res := SyncResult{Full: full || b.existing == nil}
	if res.Full {
		ex, err := iptablesSave(ctx)
		if err != nil {
			b.existing = nil
			return res, err
		}
		b.existing = ex
	}
	nat, filter := renderIPTables(m, b.cfg)
	text := iptRestoreText(nat, filter, *b.existing)
	for _, t := range []*iptTable{nat, filter} {
		res.Chains += len(t.order)
		for _, r := range t.rules {
			res.Rules += len(r)
		}
	}
	if !res.Full && bytes.Equal(text, b.last) {
		return res, nil
	}
	res.Operations = bytes.Count(text, []byte("\n"))
	cmd := exec.CommandContext(ctx, "iptables-restore", "--noflush", "-w")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.existing, b.last = nil, nil
		return res, fmt.Errorf("iptables-restore of the nat and filter tables: %w: %s", err, strings.TrimSpace(string(out)))
	}
	b.existing = &iptExisting{chains: map[string]map[string]bool{"nat": {}, "filter": {}}, jumps: map[iptJump]bool{}}
	for name, t := range map[string]*iptTable{"nat": nat, "filter": filter} {
		for _, c := range t.order {
			b.existing.chains[name][c] = true
		}
	}
	for _, j := range iptJumps {
		b.existing.jumps[j] = true
	}
	// The jumps are now present, so the next identical state renders
	// without them: remember that text, not this one.
	b.last = iptRestoreText(nat, filter, *b.existing)
	return res, nil
}

// iptablesSave reads our chains and jumps from the nat and filter tables.
func iptablesSave(ctx context.Context) (*iptExisting, error) {
	ex := &iptExisting{chains: map[string]map[string]bool{}, jumps: map[iptJump]bool{}}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.CommandContext(ctx, "iptables-save", "-t", table).Output()
		if err != nil {
			return nil, fmt.Errorf("iptables-save -t %s: %w", table, err)
		}
		ex.chains[table] = map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if name, ok := strings.CutPrefix(line, ":"); ok {
				ex.chains[table][strings.Fields(name)[0]] = true
				continue
			}
			f := strings.Fields(line)
			if len(f) < 4 || f[0] != "-A" {
				continue
			}
			for _, j := range iptJumps {
				jf := strings.Fields(j.rule)
				if j.table == table && j.chain == f[1] && f[len(f)-1] == jf[len(jf)-1] && sameConntrack(line, j.rule) {
					ex.jumps[j] = true
				}
			}
		}
	}
	return ex, nil
}

// sameConntrack tells apart the two jumps of one chain to one target that
// differ only by a --ctstate NEW match.
func sameConntrack(a, b string) bool {
	return strings.Contains(a, "--ctstate NEW") == strings.Contains(b, "--ctstate NEW")
}
