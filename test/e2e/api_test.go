package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// api sends raw HTTPS requests to a server, as kubectl would but with
// exactly the bytes and headers a test chooses.
type api struct {
	base  string
	hc    *http.Client
	token string // sent as a bearer token when set
}

// newAPI returns a client with the admin certificate, or an anonymous one.
func newAPI(t *testing.T, s *server, admin bool) *api {
	t.Helper()
	hc, err := s.client(admin)
	if err != nil {
		t.Fatalf("client for %s: %v", s.addr, err)
	}
	return &api{base: "https://" + s.addr, hc: hc}
}

// response is a complete HTTP response.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends one request; contentType "" sends none.
func (a *api) do(t *testing.T, method, path, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// must sends a request that has to answer want.
func (a *api) must(t *testing.T, want int, method, path, contentType, body string) response {
	t.Helper()
	r := a.do(t, method, path, contentType, body)
	if r.code != want {
		t.Fatalf("%s %s: %d, want %d; body: %s", method, path, r.code, want, r.body)
	}
	return r
}

// status decodes a response body as a metav1.Status, failing unless it is
// one (kind Status, apiVersion v1).
func (r response) status(t *testing.T) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.body)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" {
		t.Fatalf("body is not a v1 Status (kind %q apiVersion %q): %s", st.Kind, st.APIVersion, r.body)
	}
	return st
}

// object decodes a JSON object body into v.
func (r response) object(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %T: %v; body: %s", v, err, r.body)
	}
}

// names returns the metadata.name of every item in a list response.
func (r response) names(t *testing.T) []string {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		} `json:"items"`
	}
	r.object(t, &list)
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Metadata.Name)
	}
	return names
}

// watchEvent is one event of a JSON watch stream.
type watchEvent struct {
	Type   string `json:"type"`
	Object struct {
		Kind     string            `json:"kind"`
		Metadata metav1.ObjectMeta `json:"metadata"`
	} `json:"object"`
}

// watch opens a watch (path must carry watch=1) and returns the first n
// events, failing if they do not arrive within timeout.
func (a *api) watch(t *testing.T, path string, n int, timeout time.Duration) []watchEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch %s: %s: %s", path, resp.Status, b)
	}
	dec := json.NewDecoder(resp.Body)
	var events []watchEvent
	for len(events) < n {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("watch %s: after %d of %d events (%+v): %v", path, len(events), n, events, err)
		}
		if ev.Type == "BOOKMARK" {
			continue
		}
		events = append(events, ev)
	}
	return events
}
