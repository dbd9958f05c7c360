package rootcacertpublisher

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

// TestPublishesRootCA: every namespace, existing or new, gets the CA
// ConfigMap; edits to its data are undone, a deleted one comes back, and
// its labels are the user's.
func TestPublishesRootCA(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	client := srv.Client
	c, err := New(Config{Client: client, Informers: ctrltest.Informers(t, client), RootCA: []byte(testCA)})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	ctx := context.Background()
	get := func(ns string) *corev1.ConfigMap {
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return cm
	}
	published := func(ns string) func() bool {
		return func() bool {
			cm := get(ns)
			return cm != nil && cm.Data[CAKey] == testCA && len(cm.Data) == 1
		}
	}
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		apitest.WaitFor(t, 20*time.Second, "the CA in "+ns, published(ns))
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 20*time.Second, "the CA in team-a", published("team-a"))

	cm := get("team-a")
	cm.Data = map[string]string{CAKey: "forged", "extra": "x"}
	cm.Labels = map[string]string{"mine": "yes"}
	if _, err := client.CoreV1().ConfigMaps("team-a").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 20*time.Second, "the CA restored in team-a", published("team-a"))
	if get("team-a").Labels["mine"] != "yes" {
		t.Error("the user's label was dropped")
	}

	if err := client.CoreV1().ConfigMaps("default").Delete(ctx, ConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 20*time.Second, "the CA re-created in default", published("default"))
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("empty config accepted")
	}
}
