package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestDispatch(t *testing.T) {
	for _, obj := range []runtime.Object{validPod(), validService(), validDeployment(), validReplicaSet(), validNode(), validEventV1()} {
		if errs := ValidateCreate(obj); len(errs) != 0 {
			t.Errorf("ValidateCreate(%T): %v", obj, errs)
		}
		if errs := ValidateUpdate(obj, obj.DeepCopyObject()); len(errs) != 0 {
			t.Errorf("ValidateUpdate(%T, same): %v", obj, errs)
		}
	}
	bad := validPod()
	bad.Spec.Containers = nil
	expectErrors(t, ValidateCreate(bad), "Required spec.containers")

	expectErrors(t, ValidateUpdate(validPod(), validService()), "Internal <nil>")
	if errs := ValidateCreate(&corev1.PodTemplate{}); errs != nil {
		t.Errorf("unknown kind: got %v, want nil", errs)
	}
}
