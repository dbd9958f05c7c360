package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestWalkthroughDoc checks docs/walkthrough.md, which `make docs` makes
// from a run of TestWalkthrough: every step S1–S19 is there with the
// commands it ran, and what each step shows still has the shape
// TestWalkthrough asserts. A guide edited by hand, or not regenerated after
// kite's output changed, fails here.
func TestWalkthroughDoc(t *testing.T) {
	data, err := os.ReadFile("../../docs/walkthrough.md")
	if err != nil {
		t.Fatalf("docs/walkthrough.md: %v (make docs writes it)", err)
	}
	doc := string(data)
	want := map[string][]string{
		"S1":  {`(?m)^\$ kubectl create deployment kuard --image=gcr.io/kuar-demo/kuard-amd64:1 --replicas=10$`, `(?m)^kuard-[0-9a-f]+-[0-9a-z]{5}\s+1/1\s+Running\s`},
		"S2":  {`(?m)^\$ kubectl port-forward kuard-\S+ 8080:8080`, `"HOSTNAME":"kuard-`},
		"S3":  {`(?m)^\$ kubectl exec -it kuard-\S+ -- ash$`, `(?m)^eth0\s`, `inet addr:10\.244\.`, `(?m)^lo\s`},
		"S4":  {`(?m)^\$ kubectl get pods -l app=kuard -o wide$`, `\s10\.244\.\d+\.\d+\s+kite-`},
		"S5":  {`(?m)^172\.30\.\d+\.2 172\.30\.\d+\.3 172\.30\.\d+\.4$`},
		"S6":  {`"KUBERNETES_SERVICE_HOST":"10\.96\.0\.1"`, `"remoteIP": *"10\.244\.`},
		"S7":  {`(?m)^\$ kite node shell kite-control-plane -- kubectl get po -o wide`, `/etc/kubernetes/admin\.conf`},
		"S8":  {`(?m)^\$ curl 10\.244\.\d+\.\d+:8080/env/api$`},
		"S9":  {`10-kite\.conflist`, `"type": *"portmap"`},
		"S10": {`(?m)^portmap$`, `"code": *4`},
		"S11": {`(?m)^service/kuard exposed$`},
		"S12": {`(?m)^  type: NodePort$`, `kuard\.default\.svc\.cluster\.local\.`},
		"S13": {`kind: Pod`, `nodeName: kite-`},
		"S14": {`(?m)^  sessionAffinity: None$`, `(?m)^  - nodePort: \d+$`, `(?m)^  type: LoadBalancer$`},
		"S15": {`(?m)^kite-dns-\S+\s+1/1\s+Running\s`},
		"S16": {`numgen random mod 10`},
		"S17": {`"HOSTNAME":"kuard-`},
		"S18": {`curl -s -m 2 localhost:\d+/env/api`, `"HOSTNAME":"kuard-`},
		"S19": {`(?m)^status:\n  loadBalancer: \{\}$`, `reason: NewReplicaSetAvailable`},
	}
	sections := regexp.MustCompile(`(?m)^\*\*(S\d+) — `).FindAllStringSubmatchIndex(doc, -1)
	seen := map[string]string{}
	for i, m := range sections {
		end := len(doc)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		seen[doc[m[2]:m[3]]] = doc[m[0]:end]
	}
	for n := 1; n <= 19; n++ {
		id := "S" + strconv.Itoa(n)
		body, ok := seen[id]
		if !ok {
			t.Errorf("docs/walkthrough.md has no step %s", id)
			continue
		}
		if !strings.Contains(body, "\n$ ") {
			t.Errorf("step %s shows no command", id)
		}
		for _, re := range want[id] {
			if !regexp.MustCompile(re).MatchString(body) {
				t.Errorf("step %s: no match for %s (run make docs)", id, re)
			}
		}
	}
}
