package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func att(id string) Attachment { return Attachment{ContainerID: id, IfName: "eth0"} }

func TestAllocateSequentialAndIdempotent(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	al := &Allocator{Range: mustRange(t, "10.244.1.0/24", ""), Store: s}

	var got []string
	for _, id := range []string{"a", "b", "c"} {
		ip, existing, err := al.Allocate(ctx, att(id))
		if err != nil || existing {
			t.Fatalf("Allocate(%s) = %s %v %v", id, ip, existing, err)
		}
		got = append(got, ip.String())
	}
	if strings.Join(got, " ") != "10.244.1.2 10.244.1.3 10.244.1.4" {
		t.Errorf("allocated %v", got)
	}
	// A retried ADD gets the same address back, marked existing.
	ip, existing, err := al.Allocate(ctx, att("b"))
	if err != nil || !existing || ip.String() != "10.244.1.3" {
		t.Errorf("Allocate(b) again = %s %v %v, want 10.244.1.3 existing", ip, existing, err)
	}
	// The same container on another interface is another attachment.
	ip, existing, _ = al.Allocate(ctx, Attachment{ContainerID: "b", IfName: "net1"})
	if existing || ip.String() != "10.244.1.5" {
		t.Errorf("Allocate(b/net1) = %s %v", ip, existing)
	}
	// Released addresses are not reused before the range comes round.
	if freed, err := al.Release(ctx, att("a")); err != nil || len(freed) != 1 || freed[0].String() != "10.244.1.2" {
		t.Errorf("Release(a) = %v %v", freed, err)
	}
	ip, _, _ = al.Allocate(ctx, att("d"))
	if ip.String() != "10.244.1.6" {
		t.Errorf("Allocate(d) = %s, want 10.244.1.6", ip)
	}
	if got, ok, _ := al.Lookup(ctx, att("d")); !ok || got != ip {
		t.Errorf("Lookup(d) = %s %v", got, ok)
	}
	if _, ok, _ := al.Lookup(ctx, att("a")); ok {
		t.Errorf("Lookup(a) found a released address")
	}
	if !s.Balanced() {
		t.Errorf("lock not balanced")
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	ctx := context.Background()
	al := &Allocator{Range: mustRange(t, "10.244.1.0/24", ""), Store: NewMemStore()}
	al.Allocate(ctx, att("a"))
	for i := range 2 {
		freed, err := al.Release(ctx, att("a"))
		if err != nil || len(freed) != 1-i {
			t.Errorf("Release #%d = %v %v", i+1, freed, err)
		}
	}
	if freed, err := al.Release(ctx, att("never")); err != nil || len(freed) != 0 {
		t.Errorf("Release(never) = %v %v", freed, err)
	}
}

func TestExhaustion(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	al := &Allocator{Range: mustRange(t, "10.244.1.0/29", ""), Store: s}
	for i := range 5 {
		if _, _, err := al.Allocate(ctx, att(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := al.Allocate(ctx, att("six"))
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("6th Allocate in a /29 = %v, want ErrExhausted", err)
	}
	if want := "no free address in 10.244.1.0/29: all 5 pod addresses are in use"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if n, _ := al.Used(ctx); n != 5 {
		t.Errorf("Used = %d", n)
	}
	al.Release(ctx, att("3"))
	if ip, _, err := al.Allocate(ctx, att("six")); err != nil || ip.String() != "10.244.1.5" {
		t.Errorf("after a release: %s %v", ip, err)
	}
	if !s.Balanced() {
		t.Errorf("lock not balanced after an error")
	}
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	al := &Allocator{Range: mustRange(t, "10.244.1.0/24", ""), Store: s}
	for _, id := range []string{"a", "b", "c"} {
		al.Allocate(ctx, att(id))
	}
	// A reservation from an older podCIDR, and one without a holder.
	s.Held[netip.MustParseAddr("10.244.9.7")] = att("old")
	s.Held[netip.MustParseAddr("10.244.1.77")] = Attachment{}
	freed, err := al.GC(ctx, []Attachment{att("b"), att("unknown")})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(freed) != "[10.244.1.2 10.244.1.4 10.244.1.77 10.244.9.7]" {
		t.Errorf("GC freed %v", freed)
	}
	if len(s.Held) != 1 || s.Held[netip.MustParseAddr("10.244.1.3")] != att("b") {
		t.Errorf("left %v", s.Held)
	}
}

func TestAllocateLockError(t *testing.T) {
	s := NewMemStore()
	s.LockErr = fmt.Errorf("%w: test", ErrBusy)
	al := &Allocator{Range: mustRange(t, "10.244.1.0/24", ""), Store: s}
	if _, _, err := al.Allocate(context.Background(), att("a")); !errors.Is(err, ErrBusy) {
		t.Errorf("Allocate = %v, want ErrBusy", err)
	}
}
