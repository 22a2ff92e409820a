package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/loadbalancer"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// EndpointsFromPods finds the client URLs of the stacked etcd members from the annotation on the etcd static
// Pods of kube-system (their annotation and labels are package staticpod's), as kubeadm does before it can ask
// etcd itself: how a joining control-plane node, which has no etcd yet, reaches the cluster's. Sorted, unique.
// Transient API errors are retried until ctx ends.
func EndpointsFromPods(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	var eps []string
	err := apply.Retry(ctx, func(ctx context.Context) error {
		var err error
		if eps, err = podEndpoints(ctx, client); err != nil {
			return err
		}
		if len(eps) == 0 {
			// Right after init the etcd mirror Pod appears only once the first kubelet has registered: wait for it
			// until ctx ends.
			return apply.ErrNotYet
		}
		return nil
	})
	if err != nil {
		return nil, endpointsError(err, "")
	}
	return eps, nil
}

// MemberEndpoints finds client URLs through which a joining control plane reaches the cluster's stacked etcd: the
// etcd Pods' annotation (EndpointsFromPods) and, while no etcd Pod is in the API yet, the addresses of the ready
// API servers in the EndpointSlice default/kubernetes, where a stacked member serves its clients too (kubeadm and
// kubeboot give a control plane's etcd and API server the same advertise address). One member that answers is
// enough: the others come from the member list. The kubelet creates a static Pod's mirror Pod only once its Node
// is registered and the PriorityClass system-node-critical exists; right after init the first kubelet can miss the
// second and try again only at its next sync of the Pod: 9 s later in the lab, which every control-plane join
// waited for. fromAPIServers says where the endpoints came from. Transient API errors are retried until ctx ends.
func MemberEndpoints(ctx context.Context, client kubernetes.Interface) (eps []string, fromAPIServers bool, err error) {
	err = apply.Retry(ctx, func(ctx context.Context) error {
		var err error
		if eps, err = podEndpoints(ctx, client); err != nil || len(eps) > 0 {
			fromAPIServers = false
			return err
		}
		servers, err := loadbalancer.APIServers(ctx, client)
		if err != nil {
			// Not there, or no ready API server in it yet: wait for either source.
			return apply.ErrNotYet
		}
		eps, fromAPIServers = nil, true
		for _, hostPort := range servers {
			host, _, err := net.SplitHostPort(hostPort)
			if err != nil {
				return err
			}
			eps = append(eps, staticpod.EtcdClientURL(host))
		}
		slices.Sort(eps)
		eps = slices.Compact(eps)
		return nil
	})
	if err != nil {
		return nil, false, endpointsError(err, ", and the EndpointSlice default/kubernetes lists no ready API server")
	}
	return eps, fromAPIServers, nil
}

// podEndpoints is one read of the etcd Pods' client URLs. Sorted, unique.
func podEndpoints(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: staticpod.Selector(staticpod.EtcdName)})
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, p := range pods.Items {
		for _, u := range strings.Split(p.Annotations[staticpod.EtcdAdvertiseClientURLsAnnotation], ",") {
			if u = strings.TrimSpace(u); u != "" {
				eps = append(eps, u)
			}
		}
	}
	slices.Sort(eps)
	return slices.Compact(eps), nil
}

func endpointsError(err error, also string) error {
	if errors.Is(err, apply.ErrNotYet) {
		return fmt.Errorf("no etcd Pod in %s carries the annotation %s%s: the cluster's etcd is external (set etcd.external), or its control-plane nodes were not made by kubeadm or kubeboot",
			metav1.NamespaceSystem, staticpod.EtcdAdvertiseClientURLsAnnotation, also)
	}
	return fmt.Errorf("list the etcd Pods in %s: %w", metav1.NamespaceSystem, err)
}
