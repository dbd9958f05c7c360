package kerneltest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kite/internal/cni"
)

// DEL after the pod's namespace is gone (the kernel took the veth with
// it) and DEL of an attachment that was never added both succeed and
// release what there is.
func TestDelWithoutNetnsOrRecord(t *testing.T) {
	h := newHarness(t, "kt2", "10.244.2.0/24")
	l := h.list("1.0.0", h.conf())
	p := newPod(t)
	h.mustAdd(l, p.rt("eth0"))
	p.delete(t)
	h.mustDel(l, p.rt("eth0"))
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations left: %v", r)
	}
	if v := h.veths(); len(v) != 0 {
		t.Errorf("veths left: %v", v)
	}
	// Never added, no namespace, no cached result.
	rt := p.rt("eth0")
	rt.ContainerID, rt.NetNS = "never-added", ""
	h.mustDel(l, rt)
	// The data dir gone altogether.
	os.RemoveAll(h.dataDir)
	h.mustDel(l, rt)
}

// 200 ADD/DEL cycles leave no veth, no reservation and no held lock.
func TestAddDelCycles(t *testing.T) {
	h := newHarness(t, "kt3", "10.244.3.0/24")
	l := h.list("1.0.0", h.conf())
	p := newPod(t)
	n := 200
	if testing.Short() {
		n = 20
	}
	seen := map[string]bool{}
	start := time.Now()
	for i := range n {
		rt := p.rt("eth0")
		rt.ContainerID = fmt.Sprintf("cycle-%d", i)
		r := h.mustAdd(l, rt)
		seen[podIP(t, r)] = true
		h.mustDel(l, rt)
	}
	t.Logf("%d ADD/DEL cycles in %v; %d distinct addresses used", n, time.Since(start), len(seen))
	for i := range n {
		if name := cni.HostVethName(fmt.Sprintf("cycle-%d", i), "eth0"); linkExists(name) {
			t.Errorf("veth %s of cycle %d left", name, i)
		}
	}
	if v := h.veths(); len(v) != 0 {
		t.Errorf("veths left: %v", v)
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations left: %v", r)
	}
	if out, err := p.exec("ip", "-o", "link", "show", "type", "veth"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("veths left in the pod: %q %v", out, err)
	}
	// Nothing holds the lock: a non-blocking flock on the data dir works.
	f, err := os.Open(h.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("IPAM lock still held: %v", err)
	}
	// Sequential allocation walks the range rather than reusing one address.
	if n >= 20 && len(seen) < 20 {
		t.Errorf("only %d distinct addresses over %d cycles: allocation is not sequential", len(seen), n)
	}
}

// Twenty ADDs at once get twenty distinct addresses; twenty DELs at once
// clean up.
func TestConcurrentAdds(t *testing.T) {
	h := newHarness(t, "kt4", "10.244.4.0/24")
	l := h.list("1.0.0", h.conf())
	const n = 20
	pods := make([]*pod, n)
	for i := range pods {
		pods[i] = newPod(t)
	}
	ips := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.add(l, p.rt("eth0"))
			if err == nil && len(r.IPs) == 1 {
				ips[i] = r.IPs[0].Address.IP.String()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	byIP := map[string]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
		if j, dup := byIP[ips[i]]; dup {
			t.Errorf("pods %d and %d both got %s", j, i, ips[i])
		}
		byIP[ips[i]] = i
	}
	if r := h.reservations(); len(r) != n {
		t.Errorf("%d reservations, want %d", len(r), n)
	}
	if err := pods[0].ping(ips[n-1]); err != nil {
		t.Error(err)
	}
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.del(l, p.rt("eth0"))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("DEL %d: %v", i, err)
		}
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations left: %v", r)
	}
	if v := h.veths(); len(v) != 0 {
		t.Errorf("veths left: %v", v)
	}
}

// A /29 has five pod addresses; the sixth ADD fails with a clear message
// and code, and leaves no veth and no reservation behind.
func TestExhaustedSubnet(t *testing.T) {
	h := newHarness(t, "kt5", "10.244.5.0/29")
	l := h.list("1.0.0", h.conf())
	var pods []*pod
	for range 5 {
		p := newPod(t)
		h.mustAdd(l, p.rt("eth0"))
		pods = append(pods, p)
	}
	sixth := newPod(t)
	_, err := h.add(l, sixth.rt("eth0"))
	if err == nil {
		t.Fatal("sixth ADD in a /29 succeeded")
	}
	if code := cniCode(err); code != cni.CodeRangeExhausted {
		t.Errorf("code %d, want %d: %v", code, cni.CodeRangeExhausted, err)
	}
	if want := "no free address in 10.244.5.0/29: all 5 pod addresses are in use"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if v := h.veths(); len(v) != 5 {
		t.Errorf("%d kite veths, want 5: %v", len(v), v)
	}
	if out, err := sixth.exec("ip", "-o", "link", "show", "eth0"); err == nil {
		t.Errorf("failed ADD left eth0 in the pod: %s", out)
	}
	if name := cni.HostVethName(sixth.id, "eth0"); linkExists(name) {
		t.Errorf("failed ADD left host veth %s", name)
	}
	h.mustDel(l, sixth.rt("eth0")) // the runtime cleans up after a failed ADD
	h.mustDel(l, pods[2].rt("eth0"))
	h.mustAdd(l, sixth.rt("eth0"))
	for _, p := range append(pods, sixth) {
		h.mustDel(l, p.rt("eth0"))
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations left: %v", r)
	}
}

// An ADD that fails after the address was reserved (eth0 is taken in the
// pod) releases it and leaves no veth.
func TestFailedAddRollsBack(t *testing.T) {
	h := newHarness(t, "kt6", "10.244.6.0/24")
	l := h.list("1.0.0", h.conf())
	p := newPod(t)
	run(t, "ip", "-n", p.name, "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	_, err := h.add(l, p.rt("eth0"))
	if err == nil {
		t.Fatal("ADD with eth0 taken succeeded")
	}
	if code := cniCode(err); code != cni.CodeContainerNetwork || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("error %v (code %d), want code %d saying it already exists", err, code, cni.CodeContainerNetwork)
	}
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("failed ADD left reservations %v", r)
	}
	if v := h.veths(); len(v) != 0 || linkExists(cni.HostVethName(p.id, "eth0")) {
		t.Errorf("failed ADD left veths %v", v)
	}
	// Another interface name works, in the same pod.
	r := h.mustAdd(l, p.rt("net1"))
	if r.Interfaces[2].Name != "net1" {
		t.Errorf("result names %s", r.Interfaces[2].Name)
	}
	// A second ADD of a live attachment fails and does not take its
	// address or veth away.
	if _, err := h.add(l, p.rt("net1")); err == nil {
		t.Fatal("second ADD of one attachment succeeded")
	}
	if err := h.check(l, p.rt("net1")); err != nil {
		t.Errorf("CHECK after a refused second ADD: %v", err)
	}
	h.mustDel(l, p.rt("net1"))
	if r := h.reservations(); len(r) != 0 {
		t.Errorf("reservations left %v", r)
	}
}

// CHECK notices a missing address, a missing default route, hairpin off,
// and a lost reservation.
func TestCheckFindsBreakage(t *testing.T) {
	h := newHarness(t, "kt7", "10.244.7.0/24")
	l := h.list("1.0.0", h.conf())
	for _, tc := range []struct {
		name   string
		break_ func(p *pod, ip string)
		want   string
	}{
		{"address removed", func(p *pod, ip string) {
			run(t, "ip", "-n", p.name, "addr", "del", ip+"/24", "dev", "eth0")
		}, "lacks address"},
		{"default route removed", func(p *pod, ip string) {
			run(t, "ip", "-n", p.name, "route", "del", "default")
		}, "lacks the default route"},
		{"hairpin off", func(p *pod, ip string) {
			run(t, "ip", "link", "set", cni.HostVethName(p.id, "eth0"), "type", "bridge_slave", "hairpin", "off")
		}, "hairpin mode is off"},
		{"eth0 down", func(p *pod, ip string) {
			run(t, "ip", "-n", p.name, "link", "set", "eth0", "down")
		}, "is down"},
		{"reservation lost", func(p *pod, ip string) {
			os.Remove(h.dataDir + "/" + ip)
		}, "no IPAM reservation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(t)
			r := h.mustAdd(l, p.rt("eth0"))
			defer h.mustDel(l, p.rt("eth0"))
			if err := h.check(l, p.rt("eth0")); err != nil {
				t.Fatalf("CHECK before breaking: %v", err)
			}
			tc.break_(p, podIP(t, r))
			err := h.check(l, p.rt("eth0"))
			if code := cniCode(err); code != cni.CodeCheckFailed || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CHECK = %v (code %d), want code %d saying %q", err, code, cni.CodeCheckFailed, tc.want)
			}
		})
	}
}
