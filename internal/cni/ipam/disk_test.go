package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDiskStoreFiles(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "networks", "kite")
	s, err := NewDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	al := &Allocator{Range: mustRange(t, "10.244.1.0/24", ""), Store: s}
	ip, _, err := al.Allocate(ctx, Attachment{ContainerID: "c0ffee", IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ip.String()))
	if err != nil || string(data) != "c0ffee\neth0\n" {
		t.Errorf("reservation file = %q %v", data, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, LastReservedFile)); strings.TrimSpace(string(data)) != ip.String() {
		t.Errorf("%s = %q", LastReservedFile, data)
	}
	if got := dirNames(t, dir); got != "10.244.1.2 last_reserved_ip" {
		t.Errorf("dir holds %s", got)
	}
	// A second store on the same directory (another process) sees it.
	s2, _ := NewDiskStore(dir)
	al2 := &Allocator{Range: al.Range, Store: s2}
	if got, ok, err := al2.Lookup(ctx, Attachment{ContainerID: "c0ffee", IfName: "eth0"}); !ok || got != ip || err != nil {
		t.Errorf("Lookup through another store = %s %v %v", got, ok, err)
	}
	if _, err := al2.Release(ctx, Attachment{ContainerID: "c0ffee", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); got != "last_reserved_ip" {
		t.Errorf("after release dir holds %s", got)
	}
	// Reserving an address twice fails even without the allocator.
	if err := s.Reserve(netip.MustParseAddr("10.244.1.9"), Attachment{"x", "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(netip.MustParseAddr("10.244.1.9"), Attachment{"y", "eth0"}); err == nil {
		t.Errorf("second Reserve of one address succeeded")
	}
	if err := s.CheckWritable(); err != nil {
		t.Error(err)
	}
}

func TestDiskStoreIgnoresStrayFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "lock"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ".tmp-10.244.1.2-123"), []byte("half"), 0o644)
	os.WriteFile(filepath.Join(dir, "10.244.1.3"), []byte("abc\r\neth1"), 0o644)
	os.WriteFile(filepath.Join(dir, LastReservedFile), []byte("garbage"), 0o644)
	s, _ := NewDiskStore(dir)
	held, err := s.Reservations()
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[netip.MustParseAddr("10.244.1.3")] != (Attachment{"abc", "eth1"}) {
		t.Errorf("Reservations = %v", held)
	}
	if last, err := s.LastReserved(); err != nil || last.IsValid() {
		t.Errorf("LastReserved with garbage = %v %v", last, err)
	}
}

func TestDiskStoreLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	a, _ := NewDiskStore(dir)
	b, _ := NewDiskStore(dir)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Lock(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Lock while held = %v, want ErrBusy", err)
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(context.Background()); err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	b.Unlock()
	if err := b.Unlock(); err == nil {
		t.Errorf("Unlock without Lock succeeded")
	}
}

// Many allocators on one directory, as concurrent plugin processes, never
// hand out one address twice.
func TestDiskStoreConcurrentAllocations(t *testing.T) {
	dir := t.TempDir()
	r := mustRange(t, "10.244.1.0/26", "")
	var wg sync.WaitGroup
	ips := make([]netip.Addr, 40)
	errs := make([]error, 40)
	for i := range ips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := NewDiskStore(dir)
			if err != nil {
				errs[i] = err
				return
			}
			al := &Allocator{Range: r, Store: s}
			ips[i], _, errs[i] = al.Allocate(context.Background(), att(fmt.Sprint("c", i)))
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatalf("allocation %d: %v", i, errs[i])
		}
		if j, dup := seen[ip]; dup {
			t.Errorf("%s handed out to %d and %d", ip, j, i)
		}
		seen[ip] = i
	}
	if n := len(strings.Fields(dirNames(t, dir))); n != 41 {
		t.Errorf("dir holds %d files, want 40 reservations + %s", n, LastReservedFile)
	}
}

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}
