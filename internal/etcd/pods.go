package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// EndpointsFromPods finds the client URLs of the stacked etcd members from the annotation on the etcd static
// Pods of kube-system (their annotation and labels are package staticpod's), as kubeadm does before it can ask
// etcd itself: how a joining control-plane node, which has no etcd yet, reaches the cluster's. Sorted, unique.
// Transient API errors are retried until ctx ends.
func EndpointsFromPods(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	var eps []string
	err := apply.Retry(ctx, func(ctx context.Context) error {
		pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: staticpod.Selector(staticpod.EtcdName)})
		if err != nil {
			return err
		}
		eps = eps[:0]
		for _, p := range pods.Items {
			for _, u := range strings.Split(p.Annotations[staticpod.EtcdAdvertiseClientURLsAnnotation], ",") {
				if u = strings.TrimSpace(u); u != "" {
					eps = append(eps, u)
				}
			}
		}
		if len(eps) == 0 {
			// Right after init the etcd mirror Pod appears only once the first kubelet has registered: wait for it
			// until ctx ends.
			return apply.ErrNotYet
		}
		return nil
	})
	if errors.Is(err, apply.ErrNotYet) {
		return nil, fmt.Errorf("no etcd Pod in %s carries the annotation %s: the cluster's etcd is external (set etcd.external), or its control-plane nodes were not made by kubeadm or kubeboot",
			metav1.NamespaceSystem, staticpod.EtcdAdvertiseClientURLsAnnotation)
	}
	if err != nil {
		return nil, fmt.Errorf("list the etcd Pods in %s: %w", metav1.NamespaceSystem, err)
	}
	slices.Sort(eps)
	return slices.Compact(eps), nil
}
