package e2e

// Issue 8's end-to-end tier: cluster DNS as pods see it, in a lab (S12,
// S15, S16): kite-dns pods behind kube-dns at 10.96.0.10, names by the
// Kubernetes DNS specification, asked through kuard's /dns/api (Go's
// resolver with the pod's resolv.conf) and busybox nslookup.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// dnsAnswer is kuard's /dns/api answer.
type dnsAnswer struct {
	Answers    []string `json:"answers"`
	Error      string   `json:"error"`
	Elapsed    string   `json:"elapsed"`
	ResolvConf string   `json:"resolvConf"`
}

func TestDNS(t *testing.T) {
	l := startLab(t, 2)
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	sys := l.kubectl(t, kubectlVersions(t)[0], "kube-system")

	t.Run("kube-dns and kite-dns as upstream deploys them", func(t *testing.T) {
		wantMatch(t, sys.run(t, "rollout", "status", "deployment/kite-dns", "--timeout=120s"), `successfully rolled out`)
		svc := sys.run(t, "get", "svc", "kube-dns", "-o", `jsonpath={.spec.clusterIP} {range .spec.ports[*]}{.name}:{.port}/{.protocol} {end}`)
		if strings.TrimSpace(svc) != "10.96.0.10 dns:53/UDP dns-tcp:53/TCP metrics:9153/TCP" {
			t.Errorf("kube-dns: %q", svc)
		}
		if n := len(strings.Fields(sys.run(t, "get", "pods", "-l", "k8s-app=kube-dns", "-o", "jsonpath={.items[*].metadata.name}"))); n != 2 {
			t.Errorf("%d kite-dns pods, want 2", n)
		}
	})

	k.run(t, "create", "deployment", "kuard", "--image="+kuardImage1, "--replicas=3")
	apply(t, k, `apiVersion: v1
kind: Service
metadata:
  name: kuard
spec:
  selector:
    app: kuard
  ports:
  - name: http
    port: 80
    targetPort: 8080
`)
	wantMatch(t, k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout), `successfully rolled out`)
	client := strings.Fields(k.run(t, "get", "pods", "-l", "app=kuard", "-o", "jsonpath={.items[*].metadata.name}"))[0]
	clusterIP := k.run(t, "get", "svc", "kuard", "-o", "jsonpath={.spec.clusterIP}")
	lookup := func(t *testing.T, name, typ string) dnsAnswer {
		t.Helper()
		out := k.run(t, "exec", client, "--", "wget", "-q", "-O", "-", fmt.Sprintf("http://127.0.0.1:8080/dns/api?name=%s&type=%s", name, typ))
		var a dnsAnswer
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatalf("dns/api %s %s: %v\n%s", name, typ, err, out)
		}
		return a
	}
	want := func(t *testing.T, name, typ string, answers ...string) {
		t.Helper()
		var a dnsAnswer
		waitFor(t, 30*time.Second, fmt.Sprintf("%s %s → %v", name, typ, answers), func() error {
			a = lookup(t, name, typ)
			got := slices.Clone(a.Answers)
			slices.Sort(got)
			w := slices.Clone(answers)
			slices.Sort(w)
			if !slices.Equal(got, w) {
				return fmt.Errorf("answers %v error %q", a.Answers, a.Error)
			}
			return nil
		})
	}

	t.Run("the pod's resolv.conf", func(t *testing.T) {
		rc := k.run(t, "exec", client, "--", "cat", "/etc/resolv.conf")
		wantMatch(t, rc, `(?m)^nameserver 10\.96\.0\.10$`, `(?m)^search default\.svc\.cluster\.local svc\.cluster\.local cluster\.local`, `(?m)^options ndots:5$`)
	})
	t.Run("Service names", func(t *testing.T) {
		for _, name := range []string{"kuard", "kuard.default", "kuard.default.svc", "kuard.default.svc.cluster.local"} {
			want(t, name, "A", clusterIP)
		}
		want(t, "kubernetes.default", "A", "10.96.0.1")
		// busybox nslookup fails a short name when any search domain says
		// NXDOMAIN; it is given the full name, as in its own docs.
		wantMatch(t, k.run(t, "exec", client, "--", "nslookup", "kuard.default.svc.cluster.local"), `Address:\s+`+strings.ReplaceAll(clusterIP, ".", `\.`))
	})
	t.Run("SRV for a named port", func(t *testing.T) {
		want(t, "_http._tcp.kuard.default.svc.cluster.local", "SRV", "0 100 80 kuard.default.svc.cluster.local.")
	})
	t.Run("headless Service: an address per ready pod", func(t *testing.T) {
		apply(t, k, probedKuard("many", 10)+`apiVersion: v1
kind: Service
metadata:
  name: many
spec:
  clusterIP: None
  selector:
    app: many
  ports:
  - port: 8080
`)
		wantMatch(t, k.run(t, "rollout", "status", "deployment/many", "--timeout="+rolloutTimeout), `successfully rolled out`)
		ips := strings.Fields(k.run(t, "get", "pods", "-l", "app=many", "-o", "jsonpath={.items[*].status.podIP}"))
		want(t, "many", "A", ips...)
		names := strings.Fields(k.run(t, "get", "pods", "-l", "app=many", "-o", "jsonpath={.items[*].metadata.name}"))
		k.run(t, "exec", names[0], "--", "wget", "-q", "-O", "-", "--post-data=", "http://127.0.0.1:8080/ready/fail")
		want(t, "many", "A", ips[1:]...)
	})
	t.Run("ExternalName, then changed to ClusterIP", func(t *testing.T) {
		apply(t, k, `apiVersion: v1
kind: Service
metadata:
  name: alias
spec:
  type: ExternalName
  externalName: kuard.default.svc.cluster.local
`)
		want(t, "alias", "CNAME", "kuard.default.svc.cluster.local.")
		want(t, "alias", "A", clusterIP)
		k.run(t, "patch", "service", "alias", "--type=merge", "-p",
			`{"spec":{"type":"ClusterIP","externalName":null,"selector":{"app":"kuard"},"ports":[{"port":80,"targetPort":8080}]}}`)
		ip := k.run(t, "get", "svc", "alias", "-o", "jsonpath={.spec.clusterIP}")
		start := time.Now()
		want(t, "alias", "A", ip)
		t.Logf("ExternalName → ClusterIP answered after %s", time.Since(start).Round(10*time.Millisecond))
	})
	t.Run("an outside name fails fast offline", func(t *testing.T) {
		start := time.Now()
		a := lookup(t, "kite-e2e.example.com", "A")
		took := time.Since(start)
		t.Logf("kite-e2e.example.com: %q after %s (resolver: %s)", a.Error, took.Round(10*time.Millisecond), a.Elapsed)
		if a.Error == "" || len(a.Answers) > 0 {
			t.Errorf("an outside name resolved offline: %v", a.Answers)
		}
		// A resolver that hangs costs its 5 s timeout per try.
		if took > 5*time.Second {
			t.Errorf("the lookup took %s: kite dns should fail it at once when no upstream answers", took)
		}
	})
	t.Run("no query lost while a DNS pod is killed", func(t *testing.T) {
		dnsPods := strings.Fields(sys.run(t, "get", "pods", "-l", "k8s-app=kube-dns", "-o", "jsonpath={.items[*].metadata.name}"))
		var wg sync.WaitGroup
		var out string
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := k.try(t, nil, "", "exec", client, "--", "sh", "-c",
				`i=0; while [ $i -lt 200 ]; do wget -q -O - 'http://127.0.0.1:8080/dns/api?name=kuard&type=A' | grep -c '"`+clusterIP+`"' ; i=$((i+1)); done`)
			out = r.stdout
		}()
		sys.run(t, "delete", "pod", dnsPods[0], "--wait=false")
		wg.Wait()
		ok, failed := 0, 0
		for _, f := range strings.Fields(out) {
			if f == "1" {
				ok++
			} else {
				failed++
			}
		}
		if ok != 200 {
			t.Errorf("200 lookups while %s was deleted: %d answered, %d failed", dnsPods[0], ok, failed)
		}
	})
}
