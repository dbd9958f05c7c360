package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// call sends one raw request and decodes the Status it answers.
func call(t *testing.T, c *http.Client, method, url, contentType, body string) (int, metav1.Status, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var st metav1.Status
	_ = json.Unmarshal(data, &st)
	return resp.StatusCode, st, resp.Header
}

// Bad requests get the right code and a Status naming the problem; none of
// them stores anything.
func TestBadInput(t *testing.T) {
	ts := startServer(t)
	admin, err := rest.HTTPClientFor(ts.cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ts.cfg.TLSClientConfig.CAData)
	anonymous := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := ts.cfg.Host
	cms := base + "/api/v1/namespaces/default/configmaps"

	cases := []struct {
		name, method, url, contentType, body string
		client                               *http.Client
		code                                 int
		reason                               metav1.StatusReason
		contains                             string
	}{
		{"malformed JSON", "POST", cms, "application/json", `{"metadata": {"name": "x"`, admin, 400, metav1.StatusReasonBadRequest, ""},
		{"invalid name", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Foo_Bar"}}`, admin, 422, metav1.StatusReasonInvalid, "metadata.name"},
		{"unknown field, strict", "POST", cms + "?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}`, admin, 400, metav1.StatusReasonBadRequest, `unknown field "bogus"`},
		{"wrong kind", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, admin, 400, metav1.StatusReasonBadRequest, ""},
		{"no credentials", "GET", cms, "", "", anonymous, 401, metav1.StatusReasonUnauthorized, ""},
		{"bad token", "GET", cms, "", "", nil, 401, metav1.StatusReasonUnauthorized, ""},
		{"patch as text/plain", "PATCH", cms + "/x", "text/plain", `{}`, admin, 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"apply without fieldManager", "PATCH", cms + "/x", "application/apply-patch+yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", admin, 400, metav1.StatusReasonBadRequest, "fieldManager"},
		{"bad dryRun", "POST", cms + "?dryRun=Some", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`, admin, 400, metav1.StatusReasonBadRequest, "dryRun"},
		{"unknown resource", "GET", base + "/api/v1/nothings", "", "", admin, 404, metav1.StatusReasonNotFound, ""},
		{"bad label selector", "GET", cms + "?labelSelector=a%3D%3D%3Db", "", "", admin, 400, metav1.StatusReasonBadRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := c.client
			if client == nil {
				client = anonymous
			}
			url := c.url
			var code int
			var st metav1.Status
			if c.name == "bad token" {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer abcdef.0123456789abcdef")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				_ = json.Unmarshal(data, &st)
				code = resp.StatusCode
			} else {
				code, st, _ = call(t, client, c.method, url, c.contentType, c.body)
			}
			if code != c.code || st.Kind != "Status" || st.Reason != c.reason || !strings.Contains(st.Message, c.contains) {
				t.Fatalf("got %d %+v, want %d %s containing %q", code, st, c.code, c.reason, c.contains)
			}
		})
	}
	// Anonymous clients may read health and version.
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		resp, err := anonymous.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("anonymous %s: %d", p, resp.StatusCode)
		}
	}
	// Unknown fields under Warn (the default) come back as warnings.
	_, _, h := call(t, admin, "POST", cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"warned"},"bogus":1}`)
	if !strings.Contains(h.Get("Warning"), `unknown field \"bogus\"`) {
		t.Fatalf("warning header: %q", h.Get("Warning"))
	}
	// Nothing half-made: only the warned-about object exists.
	list, err := ts.client.CoreV1().ConfigMaps("default").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "warned" {
		t.Fatalf("stored after bad requests: %+v", list.Items)
	}
}
