package image

import (
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func randomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(1024, layers)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/app"}, Cmd: []string{"--serve"},
		Env: []string{"PATH=/bin", "A=b"}, WorkingDir: "/srv", User: "1000:1000",
		ExposedPorts: map[string]struct{}{"9090/udp": {}, "8080/tcp": {}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPullPolicies(t *testing.T) {
	reg := startRegistry(t, nil)
	s := newStore(t, nil)
	ctx := testCtx(t)
	ref := reg.host + "/team/app:v1"
	v1img := randomImage(t, 2)
	reg.push(t, "team/app:v1", v1img)
	reg.counts()

	// Never, absent: the kubelet error, no request.
	_, err := s.Pull(ctx, ref, PullNever, nil)
	if !errors.Is(err, ErrImageNeverPull) || !strings.HasPrefix(err.Error(), "ErrImageNeverPull: ") {
		t.Fatalf("Never, absent: %v", err)
	}

	img, err := s.Pull(ctx, ref, PullIfNotPresent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := reg.counts(); c["blobs"] != 3 {
		t.Errorf("first pull fetched %d blobs, want 3 (config and 2 layers)", c["blobs"])
	}
	if img.Name != ref || img.Digest != digestOf(t, v1img) || len(img.Layers) != 2 || !img.Pulled {
		t.Errorf("pulled %+v", img)
	}
	want := ImageConfig{Entrypoint: []string{"/app"}, Cmd: []string{"--serve"}, Env: []string{"PATH=/bin", "A=b"},
		WorkingDir: "/srv", User: "1000:1000", ExposedPorts: []string{"8080/tcp", "9090/udp"}}
	if !equalConfig(img.Config, want) {
		t.Errorf("config %+v, want %+v", img.Config, want)
	}
	if got, want := img.RepoDigests, []string{reg.host + "/team/app@" + img.Digest}; !slices.Equal(got, want) {
		t.Errorf("repo digests %v, want %v", got, want)
	}

	// Present: IfNotPresent and Never ask nothing.
	for _, p := range []PullPolicy{PullIfNotPresent, PullNever, ""} {
		if got, err := s.Pull(ctx, ref, p, nil); err != nil || got.Digest != img.Digest || got.Pulled {
			t.Errorf("%q, present: %v %s pulled=%v", p, err, got.Digest, got.Pulled)
		}
	}
	if c := reg.counts(); len(c) != 0 {
		t.Errorf("IfNotPresent/Never with the image present made requests: %v", c)
	}

	// Always, unchanged: the manifest is asked for, no blob.
	if got, err := s.Pull(ctx, ref, PullAlways, nil); err != nil || got.Digest != img.Digest {
		t.Errorf("Always, unchanged: %v %s", err, got.Digest)
	}
	if c := reg.counts(); c["blobs"] != 0 || c["manifests"] == 0 {
		t.Errorf("Always, unchanged: requests %v, want manifests only", c)
	}

	// The tag moves: IfNotPresent keeps the old image, Always gets the new.
	v2img := randomImage(t, 1)
	reg.push(t, "team/app:v1", v2img)
	if got, _ := s.Pull(ctx, ref, PullIfNotPresent, nil); got.Digest != img.Digest {
		t.Errorf("IfNotPresent after the tag moved: %s, want the old %s", got.Digest, img.Digest)
	}
	got, err := s.Pull(ctx, ref, PullAlways, nil)
	if err != nil || got.Digest != digestOf(t, v2img) {
		t.Errorf("Always after the tag moved: %v %s, want %s", err, got.Digest, digestOf(t, v2img))
	}
	if got := blobs(t, s); len(got) != 3 {
		t.Errorf("after the tag moved the store holds %d blobs, want the new image's 3: %v", len(got), got)
	}

	// By digest: present, it is not asked for again; the old image, which
	// the tag no longer names, is pulled and named by its digest.
	reg.counts()
	if got, err := s.Pull(ctx, reg.host+"/team/app@"+digestOf(t, v2img), PullAlways, nil); err != nil || got.Digest != digestOf(t, v2img) {
		t.Errorf("by a present digest: %v %s", err, got.Digest)
	}
	if c := reg.counts(); len(c) != 0 {
		t.Errorf("pull by a present digest made requests: %v", c)
	}
	old := reg.host + "/team/app@" + img.Digest
	if got, err := s.Pull(ctx, old, PullIfNotPresent, nil); err != nil || got.Digest != img.Digest || got.Name != old {
		t.Errorf("by the old digest: %v %s %s", err, got.Name, got.Digest)
	}
	if _, err := s.Pull(ctx, ref, "Sometimes", nil); err == nil {
		t.Error("unknown pull policy accepted")
	}
}

func equalConfig(a, b ImageConfig) bool {
	return slices.Equal(a.Entrypoint, b.Entrypoint) && slices.Equal(a.Cmd, b.Cmd) && slices.Equal(a.Env, b.Env) &&
		a.WorkingDir == b.WorkingDir && a.User == b.User && slices.Equal(a.ExposedPorts, b.ExposedPorts)
}

func TestPullMultiPlatform(t *testing.T) {
	reg := startRegistry(t, nil)
	s := newStore(t, nil)
	ctx := testCtx(t)
	mine, other := randomImage(t, 1), randomImage(t, 1)
	otherArch := "arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	reg.pushIndex(t, "multi:1", idx)
	idxDigest, _ := idx.Digest()

	img, err := s.Pull(ctx, reg.host+"/multi:1", PullAlways, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != digestOf(t, mine) {
		t.Errorf("pulled %s, want this platform's %s", img.Digest, digestOf(t, mine))
	}
	if want := reg.host + "/multi@" + idxDigest.String(); !slices.Equal(img.RepoDigests, []string{want}) {
		t.Errorf("repo digests %v, want the index's %s", img.RepoDigests, want)
	}
	reg.counts()
	if _, err := s.Pull(ctx, reg.host+"/multi:1", PullAlways, nil); err != nil {
		t.Fatal(err)
	}
	if c := reg.counts(); c["blobs"] != 0 {
		t.Errorf("Always on an unchanged index fetched blobs: %v", c)
	}
	if _, err := s.Get(reg.host + "/multi@" + idxDigest.String()); err != nil {
		t.Errorf("Get by the index digest: %v", err)
	}
}

// TestPullUnreachable: offline, a pull fails at once with the network's
// error inside a PullError, and nothing is stored.
func TestPullUnreachable(t *testing.T) {
	s := newStore(t, nil)
	ctx := testCtx(t)
	for _, ref := range []string{
		"127.0.0.1:1/nothing/here:1",        // connection refused
		"registry.invalid/nothing/here:1",   // no route, no DNS: only lo exists
		"gcr.io/kuar-demo/kuard-amd64:blue", // the upstream registry, unreachable
	} {
		start := time.Now()
		_, err := s.Pull(ctx, ref, PullIfNotPresent, nil)
		took := time.Since(start)
		var pe *PullError
		if !errors.As(err, &pe) || !errors.Is(err, ErrImagePull) || !IsPullError(err) {
			t.Errorf("%s: %v, want a PullError", ref, err)
			continue
		}
		if pe.Err == nil || !strings.Contains(err.Error(), pe.Err.Error()) {
			t.Errorf("%s: the message %q lacks the registry's error", ref, err)
		}
		if took > 5*time.Second {
			t.Errorf("%s: failed after %v, want at once (no retries)", ref, took)
		}
		t.Logf("%s: %v (%v)", ref, err, took)
	}
	if got := blobs(t, s); len(got) != 0 {
		t.Errorf("failed pulls stored blobs: %v", got)
	}
}

func TestPullErrors(t *testing.T) {
	reg := startRegistry(t, nil)
	s := newStore(t, nil)
	ctx := testCtx(t)
	if _, err := s.Pull(ctx, reg.host+"/absent:1", PullIfNotPresent, nil); !IsPullError(err) ||
		!strings.Contains(err.Error(), "_UNKNOWN") {
		t.Errorf("absent image: %v", err)
	}
	for _, ref := range []string{"UPPER/case", "a b", "", "x:1:2"} {
		if _, err := s.Pull(ctx, ref, PullIfNotPresent, nil); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v, want InvalidImageName", ref, err)
		}
	}
}

func TestPullWithCredentials(t *testing.T) {
	reg := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "pat" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := newStore(t, nil)
	ctx := testCtx(t)
	img := randomImage(t, 1)
	// Push with the credentials.
	kc, err := DockerConfigKeychain([]byte(`{"auths":{"` + reg.host + `":{"username":"pat","password":"s3cret"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	pushWith(t, reg, "private/app:1", img, kc)

	ref := reg.host + "/private/app:1"
	if _, err := s.Pull(ctx, ref, PullIfNotPresent, nil); !IsPullError(err) || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("anonymous pull: %v, want UNAUTHORIZED", err)
	}
	wrong, _ := DockerConfigKeychain([]byte(`{"auths":{"other.example":{"auth":"cGF0OnMzY3JldA=="}}}`))
	if _, err := s.Pull(ctx, ref, PullIfNotPresent, wrong); !IsPullError(err) {
		t.Errorf("pull with another registry's secret: %v", err)
	}
	// A legacy dockercfg secret with "auth" (base64 of user:password).
	legacy, err := DockerConfigKeychain([]byte(`{"http://` + reg.host + `":{"auth":"cGF0OnMzY3JldA=="}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Pull(ctx, ref, PullIfNotPresent, legacy); err != nil || got.Digest != digestOf(t, img) {
		t.Errorf("pull with the secret: %v", err)
	}

	// A pod's imagePullSecrets: the dockerconfigjson one matches.
	s2 := newStore(t, nil)
	secrets := []corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "opaque"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"x": []byte("y")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{
			corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + reg.host + `":{"username":"pat","password":"s3cret"}}}`)}},
	}
	skc, err := SecretsKeychain(secrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Pull(ctx, ref, PullIfNotPresent, skc); err != nil {
		t.Errorf("pull with imagePullSecrets: %v", err)
	}
	bad := []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "broken"}, Type: corev1.SecretTypeDockercfg,
		Data: map[string][]byte{corev1.DockerConfigKey: []byte("{")}}}
	if _, err := SecretsKeychain(bad); err == nil || !strings.Contains(err.Error(), "ns/broken") {
		t.Errorf("a broken secret: %v", err)
	}
}

func pushWith(t *testing.T, reg *registry, ref string, img v1.Image, kc authn.Keychain) {
	t.Helper()
	if err := remoteWrite(reg.host+"/"+ref, img, kc); err != nil {
		t.Fatal(err)
	}
}

func TestDockerConfigKeychain(t *testing.T) {
	kc, err := DockerConfigKeychain(
		[]byte(`{"auths":{
			"https://index.docker.io/v1/":{"username":"hub","password":"1"},
			"registry.example:5000":{"username":"reg","password":"2"},
			"registry.example:5000/team":{"username":"team","password":"3"},
			"registry.example:5000/team/special":{"username":"special","password":"4"}}}`),
		[]byte(`{"registry.example:5000":{"username":"second","password":"5"},"quay.io":{"username":"quay","password":"6"}}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ref, user string }{
		{"busybox", "hub"},
		{"docker.io/library/busybox:1", "hub"},
		{"registry.example:5000/app", "reg"},
		{"registry.example:5000/team/app", "team"},
		{"registry.example:5000/teamwork/app", "reg"},
		{"registry.example:5000/team/special/x:1", "special"},
		{"quay.io/x/y", "quay"},
		{"gcr.io/kuar-demo/kuard-amd64:1", ""},
	} {
		r, _, err := parseRef(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != tc.user {
			t.Errorf("%s: user %q, want %q", tc.ref, cfg.Username, tc.user)
		}
	}
	if _, err := DockerConfigKeychain([]byte(`not json`)); err == nil {
		t.Error("a bad secret was accepted")
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                                     "docker.io/library/busybox:latest",
		"busybox:1.36":                                "docker.io/library/busybox:1.36",
		"docker.io/library/busybox":                   "docker.io/library/busybox:latest",
		"index.docker.io/library/busybox:1":           "docker.io/library/busybox:1",
		"someone/app":                                 "docker.io/someone/app:latest",
		"gcr.io/kuar-demo/kuard-amd64:1":              "gcr.io/kuar-demo/kuard-amd64:1",
		"localhost:5000/a/b":                          "localhost:5000/a/b:latest",
		"busybox@sha256:" + strings.Repeat("a", 64):   "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64),
		"busybox:1@sha256:" + strings.Repeat("a", 64): "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64),
		"kite.dev/kuard":                              "kite.dev/kuard:latest",
	} {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", " busybox", "Busybox", "busybox@sha256:short"} {
		if got, err := Normalize(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Normalize(%q) = %q, %v; want InvalidImageName", bad, got, err)
		}
	}
}
