package deployment

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/testutil/apitest"
)

// The API server behaviour the controller relies on, as upstream's. These
// tests name the upstream rule they check.

// Upstream's deployments/status strategy resets only spec and labels
// (registry/apps/deployment/strategy.go, deploymentStatusStrategy
// .PrepareForUpdate): annotations written through UpdateStatus are kept.
// That is how kube-controller-manager puts deployment.kubernetes.io/revision
// on the Deployment, which `kubectl get deployment -o yaml` shows and
// `kubectl rollout status --revision` reads.
func TestAPIDeploymentStatusUpdateKeepsAnnotations(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	ctx := t.Context()
	d, err := srv.Client.AppsV1().Deployments("default").Create(ctx, newDeployment("kuard", 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Annotations = map[string]string{RevisionAnnotation: "1"}
	d.Labels["changed"] = "by-status" // labels, unlike annotations, are reset
	d.Status.ObservedGeneration = d.Generation
	if _, err := srv.Client.AppsV1().Deployments("default").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := srv.Client.AppsV1().Deployments("default").Get(ctx, "kuard", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.ObservedGeneration != d.Generation {
		t.Errorf("status not written: %+v", got.Status)
	}
	if got.Annotations[RevisionAnnotation] != "1" {
		t.Errorf("annotations after UpdateStatus: %v; upstream keeps %s=1", got.Annotations, RevisionAnnotation)
	}
	if _, ok := got.Labels["changed"]; ok {
		t.Errorf("labels changed through the status subresource: %v", got.Labels)
	}
}

// Upstream's deployment strategy bumps metadata.generation on annotation
// changes too (registry/apps/deployment/strategy.go PrepareForUpdate:
// annotations are copied to ReplicaSets, so they are part of what the
// controller must observe).
func TestAPIDeploymentAnnotationChangeBumpsGeneration(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	ctx := t.Context()
	d, err := srv.Client.AppsV1().Deployments("default").Create(ctx, newDeployment("kuard", 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Annotations = map[string]string{"team": "web"}
	got, err := srv.Client.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != d.Generation+1 {
		t.Errorf("generation %d after an annotation change, upstream makes it %d", got.Generation, d.Generation+1)
	}
}

// What users see of the first rule: the Deployment carries its current
// revision.
func TestDeploymentCarriesRevision(t *testing.T) {
	e := start(t)
	e.create(t, newDeployment("kuard", 1))
	e.rollOut(t, "kuard")
	e.setImage(t, "kuard", imageV2)
	e.rollOut(t, "kuard")
	apitest.WaitFor(t, 10*time.Second, RevisionAnnotation+"=2 on the deployment (see TestAPIDeploymentStatusUpdateKeepsAnnotations)", func() bool {
		return e.get(t, "kuard").Annotations[RevisionAnnotation] == "2"
	})
}
