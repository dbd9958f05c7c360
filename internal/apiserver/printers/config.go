package printers

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func configMapPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Data", "string", "Number of keys, text and binary."),
			ageColumn(),
		},
		Cells: typed(func(cm *corev1.ConfigMap, now time.Time) []interface{} {
			return []interface{}{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), age(cm.CreationTimestamp, now)}
		}),
	}
}

func secretPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Type", "string", "What the secret holds, such as kubernetes.io/tls."),
			column("Data", "string", "Number of keys."),
			ageColumn(),
		},
		Cells: typed(func(s *corev1.Secret, now time.Time) []interface{} {
			// An unset type is Opaque, the default.
			return []interface{}{s.Name, orDefault(string(s.Type), string(corev1.SecretTypeOpaque)), int64(len(s.Data)), age(s.CreationTimestamp, now)}
		}),
	}
}

func serviceAccountPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Secrets", "string", "Number of secrets listed on the service account."),
			ageColumn(),
		},
		Cells: typed(func(sa *corev1.ServiceAccount, now time.Time) []interface{} {
			return []interface{}{sa.Name, int64(len(sa.Secrets)), age(sa.CreationTimestamp, now)}
		}),
	}
}

func leasePrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Holder", "string", "Who holds the lease."),
			ageColumn(),
		},
		Cells: typed(func(l *coordinationv1.Lease, now time.Time) []interface{} {
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return []interface{}{l.Name, holder, age(l.CreationTimestamp, now)}
		}),
	}
}
