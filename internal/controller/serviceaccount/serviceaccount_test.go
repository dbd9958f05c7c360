package serviceaccount

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/controller/internal/ctrltest"
	"kite/internal/testutil/apitest"
)

// TestDefaultServiceAccount: every namespace, existing or new, gets a
// "default" ServiceAccount, and gets it back when it is deleted.
func TestDefaultServiceAccount(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	client := srv.Client
	c, err := New(Config{Client: client, Informers: ctrltest.Informers(t, client)})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	ctx := context.Background()
	exists := func(ns string) func() bool {
		return func() bool {
			_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, DefaultServiceAccount, metav1.GetOptions{})
			return err == nil
		}
	}
	apitest.WaitFor(t, 20*time.Second, "default/default", exists("default"))
	apitest.WaitFor(t, 20*time.Second, "kube-system/default", exists("kube-system"))

	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 20*time.Second, "team-a/default", exists("team-a"))
	first, _ := client.CoreV1().ServiceAccounts("team-a").Get(ctx, DefaultServiceAccount, metav1.GetOptions{})

	if err := client.CoreV1().ServiceAccounts("team-a").Delete(ctx, DefaultServiceAccount, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 20*time.Second, "team-a/default re-created", func() bool {
		sa, err := client.CoreV1().ServiceAccounts("team-a").Get(ctx, DefaultServiceAccount, metav1.GetOptions{})
		return err == nil && sa.UID != first.UID
	})
}
