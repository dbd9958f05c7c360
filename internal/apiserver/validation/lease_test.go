package validation

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
)

func TestValidateLease(t *testing.T) {
	tests := []struct {
		name string
		spec coordinationv1.LeaseSpec
		want []string
	}{
		{"valid", coordinationv1.LeaseSpec{HolderIdentity: ptrTo("node-1"), LeaseDurationSeconds: ptrTo(int32(40))}, nil},
		{"duration", coordinationv1.LeaseSpec{LeaseDurationSeconds: ptrTo(int32(0))}, []string{"Invalid spec.leaseDurationSeconds"}},
		{"transitions", coordinationv1.LeaseSpec{LeaseTransitions: ptrTo(int32(-1))}, []string{"Invalid spec.leaseTransitions"}},
		{"strategy", coordinationv1.LeaseSpec{Strategy: ptrTo(coordinationv1.CoordinatedLeaseStrategy("Newest"))},
			[]string{"NotSupported spec.strategy.strategy"}},
		{"preferred holder without strategy", coordinationv1.LeaseSpec{PreferredHolder: ptrTo("node-2")},
			[]string{"Forbidden spec.preferredHolder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &coordinationv1.Lease{ObjectMeta: objMeta("node-1"), Spec: tt.spec}
			expectErrors(t, ValidateLease(l), tt.want...)
		})
	}

	old := &coordinationv1.Lease{ObjectMeta: objMeta("node-1")}
	l := old.DeepCopy()
	l.Spec.HolderIdentity = ptrTo("node-2")
	expectErrors(t, ValidateLeaseUpdate(l, old))
}
