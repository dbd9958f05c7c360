package printers

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func containersColumn() metav1.TableColumnDefinition {
	return wide(column("Containers", "string", "Names of the containers in the pod template."))
}

func imagesColumn() metav1.TableColumnDefinition {
	return wide(column("Images", "string", "Images of the containers in the pod template."))
}

func selectorColumn() metav1.TableColumnDefinition {
	return wide(column("Selector", "string", "Labels of the pods this object manages."))
}

func deploymentPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Ready", "string", "Ready pods out of desired pods."),
			column("Up-to-date", "string", "Pods running the current pod template."),
			column("Available", "string", "Pods ready for at least minReadySeconds."),
			ageColumn(),
			containersColumn(),
			imagesColumn(),
			selectorColumn(),
		},
		Cells: typed(func(d *appsv1.Deployment, now time.Time) []interface{} {
			names, images := containerNamesAndImages(d.Spec.Template.Spec.Containers)
			return []interface{}{
				d.Name,
				fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, desiredReplicas(d.Spec.Replicas)),
				int64(d.Status.UpdatedReplicas),
				int64(d.Status.AvailableReplicas),
				age(d.CreationTimestamp, now),
				names,
				images,
				deploymentSelector(d.Spec.Selector),
			}
		}),
	}
}

// deploymentSelector renders a Deployment's selector. Unlike other
// workloads (metav1.FormatLabelSelector), upstream leaves an empty
// selector blank here rather than "<none>".
func deploymentSelector(sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "<invalid>"
	}
	return s.String()
}

func replicaSetPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Desired", "integer", "Pods wanted."),
			column("Current", "integer", "Pods that exist."),
			column("Ready", "integer", "Pods that are ready."),
			ageColumn(),
			containersColumn(),
			imagesColumn(),
			selectorColumn(),
		},
		Cells: typed(func(rs *appsv1.ReplicaSet, now time.Time) []interface{} {
			names, images := containerNamesAndImages(rs.Spec.Template.Spec.Containers)
			return []interface{}{
				rs.Name,
				int64(desiredReplicas(rs.Spec.Replicas)),
				int64(rs.Status.Replicas),
				int64(rs.Status.ReadyReplicas),
				age(rs.CreationTimestamp, now),
				names,
				images,
				metav1.FormatLabelSelector(rs.Spec.Selector),
			}
		}),
	}
}

// desiredReplicas is spec.replicas; unset means 1, the default.
func desiredReplicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// containerNamesAndImages lists the containers' names and their images,
// each comma-separated, in the same order.
func containerNamesAndImages(cs []corev1.Container) (names, images string) {
	n := make([]string, len(cs))
	im := make([]string, len(cs))
	for i, c := range cs {
		n[i], im[i] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}
