package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// badRequest is one request the server must refuse, and how.
type badRequest struct {
	name                string
	client              string // "admin" (default), "anonymous" or "token"
	method, path, ctype string
	body                string
	code                int
	reason              metav1.StatusReason
	field               string // a details.causes[].field the error must name
	message             string // a regular expression the message must match
}

// Paths and objects the bad requests use. Service addresses are in kite's
// default service CIDR; nothing is ever sent to them.
const (
	badNS      = "bad"
	cmsPath    = "/api/v1/namespaces/" + badNS + "/configmaps"
	svcsPath   = "/api/v1/namespaces/" + badNS + "/services"
	goodPath   = cmsPath + "/good"
	jsonType   = "application/json"
	mergeType  = "application/merge-patch+json"
	keptIP     = "10.96.100.100" // asked for by invalid Services, then by a valid one
	keptPort   = 30100           // likewise, as a nodePort
	staleRVKey = "{{stale}}"     // replaced by the resourceVersion before the last update
)

func configMapJSON(name, extra string) string {
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q},"data":{"v":"x"}%s}`, name, extra)
}

// serviceJSON is a NodePort Service asking for keptIP and keptPort, with
// spec fields appended.
func serviceJSON(name string, port int, specExtra string) string {
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q},"spec":{"type":"NodePort","clusterIP":%q,`+
		`"selector":{"app":"x"},"ports":[{"port":%d,"targetPort":8080,"nodePort":%d}]%s}}`, name, keptIP, port, keptPort, specExtra)
}

var badRequests = []badRequest{
	// Malformed bodies: 400 with a Status, whatever the verb and encoding.
	{name: "malformed JSON create", method: "POST", path: cmsPath, ctype: jsonType,
		body: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"half"`, code: 400, reason: metav1.StatusReasonBadRequest},
	{name: "malformed JSON update", method: "PUT", path: goodPath, ctype: jsonType,
		body: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good"},"data":{"v":`, code: 400, reason: metav1.StatusReasonBadRequest},
	{name: "malformed merge patch", method: "PATCH", path: goodPath, ctype: mergeType,
		body: `{"data":`, code: 400, reason: metav1.StatusReasonBadRequest},
	{name: "malformed YAML create", method: "POST", path: cmsPath, ctype: "application/yaml",
		body: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [half\n", code: 400, reason: metav1.StatusReasonBadRequest},
	{name: "garbage protobuf create", method: "POST", path: cmsPath, ctype: "application/vnd.kubernetes.protobuf",
		body: "\x00\x01not a protobuf message", code: 400, reason: metav1.StatusReasonBadRequest},
	{name: "empty body create", method: "POST", path: cmsPath, ctype: jsonType, body: "", code: 400, reason: metav1.StatusReasonBadRequest},

	// Validation: 422 Invalid naming the field.
	{name: "invalid name", method: "POST", path: cmsPath, ctype: jsonType, body: configMapJSON("Foo_Bar", ""),
		code: 422, reason: metav1.StatusReasonInvalid, field: "metadata.name",
		message: `^ConfigMap "Foo_Bar" is invalid: metadata.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain`},
	{name: "invalid label value in a patch", method: "PATCH", path: goodPath, ctype: mergeType,
		body: `{"metadata":{"labels":{"tier":"not valid!"}}}`, code: 422, reason: metav1.StatusReasonInvalid, field: "metadata.labels",
		message: `^ConfigMap "good" is invalid: metadata.labels: Invalid value: "not valid!"`},
	{name: "invalid service port", method: "POST", path: svcsPath, ctype: jsonType, body: serviceJSON("badport", 70000, ""),
		code: 422, reason: metav1.StatusReasonInvalid, field: "spec.ports[0].port", message: `^Service "badport" is invalid: `},
	{name: "invalid service type", method: "POST", path: svcsPath, ctype: jsonType,
		body: strings.Replace(serviceJSON("badtype", 80, ""), `"NodePort"`, `"Bogus"`, 1),
		code: 422, reason: metav1.StatusReasonInvalid, field: "spec.type", message: `spec.type: Unsupported value: "Bogus"`},
	{name: "invalid service protocol", method: "POST", path: svcsPath, ctype: jsonType,
		body: strings.Replace(serviceJSON("badproto", 80, ""), `"targetPort"`, `"protocol":"ICMP","targetPort"`, 1),
		code: 422, reason: metav1.StatusReasonInvalid, field: "spec.ports[0].protocol", message: `Unsupported value: "ICMP"`},
	{name: "failed json-patch test", method: "PATCH", path: goodPath, ctype: "application/json-patch+json",
		body: `[{"op":"test","path":"/data/v","value":"nope"},{"op":"replace","path":"/data/v","value":"patched"}]`,
		code: 422, reason: metav1.StatusReasonInvalid},

	// Unknown fields under fieldValidation=Strict: the error names the field.
	{name: "unknown field, Strict", method: "POST", path: cmsPath + "?fieldValidation=Strict", ctype: jsonType,
		body: configMapJSON("strict", `,"bogus":1`), code: 400, reason: metav1.StatusReasonBadRequest, message: `strict decoding error: unknown field "bogus"`},
	{name: "unknown nested field, Strict", method: "POST", path: svcsPath + "?fieldValidation=Strict", ctype: jsonType,
		body: serviceJSON("strict", 80, `,"bogus":1`), code: 400, reason: metav1.StatusReasonBadRequest, message: `unknown field "spec.bogus"`},
	// Upstream decodes the patched object strictly and answers 422 with
	// the field path "patch".
	{name: "unknown field in a patch, Strict", method: "PATCH", path: goodPath + "?fieldValidation=Strict", ctype: mergeType,
		body: `{"bogus":1}`, code: 422, reason: metav1.StatusReasonInvalid, field: "patch", message: `strict decoding error: unknown field "bogus"`},

	// Optimistic concurrency.
	{name: "update with a stale resourceVersion", method: "PUT", path: goodPath, ctype: jsonType,
		body: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good","resourceVersion":"` + staleRVKey + `"},"data":{"v":"stale"}}`,
		code: 409, reason: metav1.StatusReasonConflict,
		message: `^Operation cannot be fulfilled on configmaps "good": the object has been modified; please apply your changes to the latest version and try again$`},
	{name: "patch with a stale resourceVersion", method: "PATCH", path: goodPath, ctype: mergeType,
		body: `{"metadata":{"resourceVersion":"` + staleRVKey + `"},"data":{"v":"stale"}}`, code: 409, reason: metav1.StatusReasonConflict},
	{name: "create what exists", method: "POST", path: cmsPath, ctype: jsonType, body: configMapJSON("good", ""),
		code: 409, reason: metav1.StatusReasonAlreadyExists, message: `^configmaps "good" already exists$`},

	// Requests that do not fit their URL.
	{name: "name differs from the URL", method: "PUT", path: goodPath, ctype: jsonType, body: configMapJSON("other", ""),
		code: 400, reason: metav1.StatusReasonBadRequest},
	{name: "namespace does not exist", method: "POST", path: "/api/v1/namespaces/nope/configmaps", ctype: jsonType,
		body: configMapJSON("lost", ""), code: 404, reason: metav1.StatusReasonNotFound, message: `^namespaces "nope" not found$`},

	// Content types: 415.
	{name: "PATCH as text/plain", method: "PATCH", path: goodPath, ctype: "text/plain", body: `{"data":{"v":"plain"}}`,
		code: 415, reason: metav1.StatusReasonUnsupportedMediaType},
	{name: "POST as text/plain", method: "POST", path: cmsPath, ctype: "text/plain", body: configMapJSON("plain", ""),
		code: 415, reason: metav1.StatusReasonUnsupportedMediaType},

	// Authentication: 401.
	{name: "list without credentials", client: "anonymous", method: "GET", path: "/api/v1/namespaces",
		code: 401, reason: metav1.StatusReasonUnauthorized},
	{name: "create without credentials", client: "anonymous", method: "POST", path: cmsPath, ctype: jsonType,
		body: configMapJSON("anonymous", ""), code: 401, reason: metav1.StatusReasonUnauthorized},
	{name: "discovery without credentials", client: "anonymous", method: "GET", path: "/api",
		code: 401, reason: metav1.StatusReasonUnauthorized},
	{name: "unknown bearer token", client: "token", method: "GET", path: "/api/v1/namespaces",
		code: 401, reason: metav1.StatusReasonUnauthorized},
}

// TestBadInput sends requests the server must refuse, checks each answer is
// the Status upstream sends, and that afterwards the server is still up
// and nothing was stored or changed.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	admin := newAPI(t, s, true)
	clients := map[string]*api{"admin": admin, "anonymous": newAPI(t, s, false), "token": newAPI(t, s, false)}
	clients["token"].token = "abcdef.0123456789abcdef"

	admin.must(t, 201, "POST", "/api/v1/namespaces", jsonType, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+badNS+`"}}`)
	var good struct{ Metadata metav1.ObjectMeta }
	admin.must(t, 201, "POST", cmsPath, jsonType, configMapJSON("good", "")).object(t, &good)
	staleRV := good.Metadata.ResourceVersion
	admin.must(t, 200, "PUT", goodPath, jsonType,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good","resourceVersion":"`+staleRV+`"},"data":{"v":"current"}}`).object(t, &good)
	currentRV := good.Metadata.ResourceVersion
	if currentRV == staleRV {
		t.Fatalf("update kept resourceVersion %s", currentRV)
	}

	for _, bc := range badRequests {
		t.Run(bc.name, func(t *testing.T) {
			c := clients["admin"]
			if bc.client != "" {
				c = clients[bc.client]
			}
			body := strings.ReplaceAll(bc.body, staleRVKey, staleRV)
			r := c.do(t, bc.method, bc.path, bc.ctype, body)
			if r.code != bc.code {
				t.Errorf("%s %s: %d, want %d; body: %s", bc.method, bc.path, r.code, bc.code, r.body)
			} else {
				checkStatus(t, r.status(t), bc)
			}
			if !s.running() {
				t.Fatalf("kite server exited after %s: %v; log:\n%s", bc.name, s.runErr, tail(s.logPath, 40))
			}
			if err := s.ready(); err != nil {
				t.Fatalf("server not ready after %s: %v", bc.name, err)
			}
			// The object the requests aimed at is as it was.
			var now struct {
				Metadata metav1.ObjectMeta
				Data     map[string]string
			}
			admin.must(t, 200, "GET", goodPath, "", "").object(t, &now)
			if now.Metadata.ResourceVersion != currentRV || now.Data["v"] != "current" || len(now.Metadata.Labels) != 0 {
				t.Errorf("configmap good changed: resourceVersion %s (want %s), data %v, labels %v",
					now.Metadata.ResourceVersion, currentRV, now.Data, now.Metadata.Labels)
			}
		})
	}

	t.Run("nothing half-made is stored", func(t *testing.T) {
		// kube-root-ca.crt is the root CA publisher's, in every namespace
		// (in its own time): wait for it, then nothing else may be there.
		waitFor(t, 30*time.Second, "kube-root-ca.crt in "+badNS, func() error {
			if got := admin.must(t, 200, "GET", cmsPath, "", "").names(t); !slices.Contains(got, "kube-root-ca.crt") {
				return fmt.Errorf("configmaps %q", got)
			}
			return nil
		})
		if got := admin.must(t, 200, "GET", cmsPath, "", "").names(t); !slices.Equal(got, []string{"good", "kube-root-ca.crt"}) {
			t.Errorf("configmaps in %s: %q, want only good (and kube-root-ca.crt)", badNS, got)
		}
		if got := admin.must(t, 200, "GET", svcsPath, "", "").names(t); len(got) != 0 {
			t.Errorf("services in %s: %q, want none", badNS, got)
		}
		if got := admin.must(t, 200, "GET", "/api/v1/namespaces", "", "").names(t); slices.Contains(got, "nope") {
			t.Errorf("namespaces %q include nope", got)
		}
		// Refused Services released (or never took) the clusterIP and
		// nodePort they asked for.
		admin.must(t, 201, "POST", svcsPath, jsonType, serviceJSON("kept", 80, ""))
	})

	t.Run("health and version answer anonymously", func(t *testing.T) {
		anon := clients["anonymous"]
		for _, p := range []string{"/healthz", "/livez", "/readyz"} {
			if r := anon.must(t, 200, "GET", p, "", ""); strings.TrimSpace(string(r.body)) != "ok" {
				t.Errorf("%s: %q, want ok", p, r.body)
			}
		}
		var v struct{ GitVersion string }
		anon.must(t, 200, "GET", "/version", "", "").object(t, &v)
		if v.GitVersion == "" {
			t.Error("/version has no gitVersion")
		}
	})

	// Upstream's NamespaceLifecycle admission refuses to delete the
	// namespaces the system relies on.
	t.Run("system namespaces cannot be deleted", func(t *testing.T) {
		for _, ns := range []string{"default", "kube-system", "kube-public"} {
			r := admin.do(t, "DELETE", "/api/v1/namespaces/"+ns, "", "")
			if r.code != 403 {
				t.Errorf("DELETE namespace %s: %d, want 403; body: %s", ns, r.code, r.body)
				continue
			}
			checkStatus(t, r.status(t), badRequest{code: 403, reason: metav1.StatusReasonForbidden,
				message: `^namespaces "` + ns + `" is forbidden: this namespace may not be deleted$`})
		}
		got := admin.must(t, 200, "GET", "/api/v1/namespaces", "", "").names(t)
		for _, ns := range []string{"default", "kube-system", "kube-public"} {
			if !slices.Contains(got, ns) {
				t.Errorf("namespace %s is gone; namespaces: %q", ns, got)
			}
		}
	})

	t.Run("unknown field, Warn", func(t *testing.T) {
		r := admin.must(t, 201, "POST", cmsPath+"?fieldValidation=Warn", jsonType, configMapJSON("warned", `,"bogus":1`))
		// RFC 7234 warnings: 299 - "<quoted text>".
		w := r.header.Values("Warning")
		if !slices.ContainsFunc(w, func(h string) bool {
			text, err := strconv.Unquote(strings.TrimPrefix(h, "299 - "))
			return err == nil && text == `unknown field "bogus"`
		}) {
			t.Errorf("Warning headers %q, want 299 - %q", w, `unknown field "bogus"`)
		}
	})
}

// checkStatus compares a Status with what a bad request should get.
func checkStatus(t *testing.T, st metav1.Status, bc badRequest) {
	t.Helper()
	if st.Status != metav1.StatusFailure || st.Code != int32(bc.code) || st.Reason != bc.reason {
		t.Errorf("status %q code %d reason %q, want Failure %d %q (message %q)", st.Status, st.Code, st.Reason, bc.code, bc.reason, st.Message)
	}
	if bc.message != "" && !regexp.MustCompile(bc.message).MatchString(st.Message) {
		t.Errorf("message %q does not match %q", st.Message, bc.message)
	}
	if bc.field != "" {
		var fields []string
		if st.Details != nil {
			for _, c := range st.Details.Causes {
				fields = append(fields, c.Field)
			}
		}
		if !slices.Contains(fields, bc.field) {
			t.Errorf("details.causes fields %q, want %s (message %q)", fields, bc.field, st.Message)
		}
	}
}
