package proxy

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", path, got)
	}
}

// emptyTable is the kernel before the proxy ever ran.
func emptyTable() *nftState {
	s := newNFTState()
	s.tableExists = false
	return s
}

// nftFake applies the transaction from an empty table to a knftables
// Fake, which checks that every reference resolves.
func nftFake(t *testing.T, m *Model, cfg Config) (*knftables.Fake, *knftables.Transaction) {
	t.Helper()
	fake := knftables.NewFake(nftFamily, nftTable)
	tx := fake.NewTransaction()
	nftTransaction(tx, renderNFT(m, cfg), emptyTable())
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("the transaction does not apply: %v\n%s", err, tx)
	}
	return fake, tx
}

func TestNFTGolden(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			_, tx := nftFake(t, sc.model(), testConfig(ModeNFTables))
			golden(t, "nft/"+sc.name+".nft", tx.String())
		})
	}
}

func TestIPTablesGolden(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			nat, filter := renderIPTables(sc.model(), testConfig(ModeIPTables))
			golden(t, "iptables/"+sc.name+".txt", string(iptRestoreText(nat, filter, iptExisting{})))
		})
	}
}

// TestNFTIncremental: one endpoint going away sends only that endpoint's
// chain deletion and its service chain's rewrite — nothing else.
func TestNFTIncremental(t *testing.T) {
	cfg := testConfig(ModeNFTables)
	before := scenarioNamed("clusterip")
	after := scenarioNamed("clusterip")
	after.slices[0].Endpoints = after.slices[0].Endpoints[:2]

	fake, _ := nftFake(t, before.model(), cfg)
	tx := fake.NewTransaction()
	nftTransaction(tx, renderNFT(after.model(), cfg), renderNFT(before.model(), cfg))
	golden(t, "nft/incremental-remove-endpoint.nft", tx.String())
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("incremental transaction does not apply: %v\n%s", err, tx)
	}
	// The result equals a fresh render of the new state.
	fresh, _ := nftFake(t, after.model(), cfg)
	if got, want := fake.Dump(), fresh.Dump(); got != want {
		t.Errorf("incremental result differs from a fresh apply:\n--- incremental\n%s\n--- fresh\n%s", got, want)
	}

	// Nothing changed: nothing is sent.
	tx = fake.NewTransaction()
	nftTransaction(tx, renderNFT(after.model(), cfg), renderNFT(after.model(), cfg))
	if tx.NumOperations() != 0 {
		t.Errorf("an unchanged state sends %d operations:\n%s", tx.NumOperations(), tx)
	}
}

// TestNFTAdoptListed: a full sync over a table listed from the kernel
// (rules unknown) rewrites chains in place and deletes what is stale, and
// never deletes or flushes the table.
func TestNFTAdoptListed(t *testing.T) {
	cfg := testConfig(ModeNFTables)
	all := scenarios()
	var before, after ModelInput
	before.NodeName, after.NodeName = thisNode, thisNode
	before.ClusterCIDR, after.ClusterCIDR = testClusterCIDR, testClusterCIDR
	for i, sc := range all {
		before.Services = append(before.Services, sc.services...)
		before.Slices = append(before.Slices, sc.slices...)
		if i%2 == 0 {
			after.Services = append(after.Services, sc.services...)
			after.Slices = append(after.Slices, sc.slices...)
		}
	}
	fake, _ := nftFake(t, BuildModel(before), cfg)
	listed, err := listNFT(context.Background(), fake)
	if err != nil {
		t.Fatal(err)
	}
	tx := fake.NewTransaction()
	nftTransaction(tx, renderNFT(BuildModel(after), cfg), listed)
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("adopting transaction does not apply: %v\n%s", err, tx)
	}
	fresh, _ := nftFake(t, BuildModel(after), cfg)
	// Endpoint elements whose value changed are re-added at the end of
	// the Fake's list: compare as sets of lines.
	if got, want := sortedLines(fake.Dump()), sortedLines(fresh.Dump()); got != want {
		t.Errorf("adopted result differs from a fresh apply:\n--- adopted\n%s\n--- fresh\n%s", got, want)
	}
}

// TestNFTChangedPortsOnly: the backend's incremental sync renders only
// the ports that changed, and the table it leaves equals a fresh apply —
// across additions, removals, endpoint changes and shared hairpin
// endpoints.
func TestNFTChangedPortsOnly(t *testing.T) {
	cfg := testConfig(ModeNFTables)
	all := scenarios()
	input := func(pick func(i int) bool, edit func(*scenario)) ModelInput {
		in := ModelInput{NodeName: thisNode, ClusterCIDR: testClusterCIDR}
		for i, sc := range all {
			if !pick(i) {
				continue
			}
			sc := scenarioNamed(sc.name) // fresh objects
			if edit != nil {
				edit(&sc)
			}
			in.Services = append(in.Services, sc.services...)
			in.Slices = append(in.Slices, sc.slices...)
		}
		return in
	}
	steps := []ModelInput{
		input(func(i int) bool { return true }, nil),
		input(func(i int) bool { return i%2 == 0 }, nil),
		input(func(i int) bool { return true }, func(sc *scenario) {
			if len(sc.slices[0].Endpoints) > 1 {
				sc.slices[0].Endpoints = sc.slices[0].Endpoints[1:]
			}
		}),
		input(func(i int) bool { return i != 0 }, nil),
		input(func(i int) bool { return true }, nil),
	}
	fake := knftables.NewFake(nftFamily, nftTable)
	b := &nftBackend{cfg: cfg, kernel: knftablesKernel{fake}}
	for i, in := range steps {
		res, err := b.Sync(context.Background(), BuildModel(in), i == 0, nil)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		fresh, _ := nftFake(t, BuildModel(in), cfg)
		// The Fake dumps elements in the order they were added: compare
		// as sets of lines.
		// Blocks of service-endpoints are handed out as ports come and go:
		// compare them by owner.
		if got, want := sortedLines(canonBlocks(fake.Dump())), sortedLines(canonBlocks(fresh.Dump())); got != want {
			t.Fatalf("step %d (%d operations): incremental result differs from a fresh apply:\n--- incremental\n%s\n--- fresh\n%s", i, res.Operations, got, want)
		}
	}
	// Unchanged: nothing sent.
	res, err := b.Sync(context.Background(), BuildModel(steps[len(steps)-1]), false, nil)
	if err != nil || res.Operations != 0 {
		t.Errorf("unchanged model: %d operations, %v", res.Operations, err)
	}
}

var (
	blockRule = regexp.MustCompile(`add rule ip kite-proxy (\S+) .*offset (\d+) map @(` + mapEndpointsPrefix + `\d+)`)
	blockUse  = regexp.MustCompile(`offset (\d+) map @(` + mapEndpointsPrefix + `\d+)`)
	blockKey  = regexp.MustCompile(`(` + mapEndpointsPrefix + `\d+) \{ (\d+) :`)
)

// canonBlocks names each endpoint block in a dump by the chain that owns
// it, whatever map and key it was given: "offset <chain> map @endpoints",
// and elements "endpoints { <chain>+i : …".
func canonBlocks(dump string) string {
	owner := map[string]string{}
	for _, m := range blockRule.FindAllStringSubmatch(dump, -1) {
		owner[m[3]+"/"+m[2]] = m[1]
	}
	dump = blockUse.ReplaceAllStringFunc(dump, func(s string) string {
		m := blockUse.FindStringSubmatch(s)
		return "offset " + owner[m[2]+"/"+m[1]] + " map @endpoints"
	})
	return blockKey.ReplaceAllStringFunc(dump, func(s string) string {
		m := blockKey.FindStringSubmatch(s)
		k, _ := strconv.ParseUint(m[2], 10, 32)
		b := k - k%endpointBlock
		return fmt.Sprintf("endpoints { %s+%d :", owner[m[1]+"/"+strconv.FormatUint(b, 10)], k-b)
	})
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
