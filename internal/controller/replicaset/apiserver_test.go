package replicaset

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/testutil/apitest"
)

// Upstream's API server cuts a generateName to 58 characters before adding
// the 5 random ones (apiserver/pkg/storage/names.SimpleNameGenerator), so
// the pods of a long-named ReplicaSet get 63-character names, which are
// valid hostnames.
func TestAPIGenerateNameIsTruncated(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	prefix := strings.Repeat("a", 70) + "-"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	got, err := srv.Client.CoreV1().Pods("default").Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Name) != 63 || !strings.HasPrefix(got.Name, prefix[:58]) {
		t.Errorf("generated name %q (%d characters); upstream gives %s + 5 random characters", got.Name, len(got.Name), prefix[:58])
	}
}
