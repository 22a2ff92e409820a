package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// WaitNodesReady polls the API through the lab's kubectl until every lab node is a Ready Node.
func WaitNodesReady(ctx context.Context, st *State, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := nodeNames(st.Nodes)
	var last string
	var denied deniedFor
	for {
		notReady, err := nodesNotReady(ctx, st, want)
		if err := denied.check(err); err != nil {
			return err
		}
		switch {
		case err != nil:
			last = err.Error()
		case len(notReady) == 0:
			return nil
		default:
			last = "not Ready: " + strings.Join(notReady, ", ")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes not Ready after %s (%s); the kubelet logs are in %s/*/logs", timeout, last, NodesDir(st.StateDir))
		case <-time.After(time.Second):
		}
	}
}

// nodesNotReady lists the wanted nodes that are missing or not Ready.
func nodesNotReady(ctx context.Context, st *State, want []string) ([]string, error) {
	cmd, err := Kubectl(ctx, st, "get", "nodes", "-o", "json", "--request-timeout=5s")
	if err != nil {
		return nil, err
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var list corev1.NodeList
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %w", err)
	}
	ready := map[string]bool{}
	for _, n := range list.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	var notReady []string
	for _, name := range want {
		if !ready[name] {
			notReady = append(notReady, name)
		}
	}
	slices.Sort(notReady)
	return notReady, nil
}

// waitClusterInfoSigned polls kube-public/cluster-info until the controller-manager's
// bootstrapsigner has added the signature for the token (key jws-kubeconfig-<token id>).
func waitClusterInfoSigned(ctx context.Context, st *State, token string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tokenID, _, _ := strings.Cut(token, ".")
	key := "jws-kubeconfig-" + tokenID
	var last string
	var denied deniedFor
	for {
		cmd, err := Kubectl(ctx, st, "-n", "kube-public", "get", "configmap", "cluster-info", "-o", "json", "--request-timeout=5s")
		if err != nil {
			return err
		}
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err = cmd.Run()
		if err != nil {
			err = fmt.Errorf("kubectl get configmap cluster-info: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		if err := denied.check(err); err != nil {
			return err
		}
		if err != nil {
			last = err.Error()
		} else {
			var cm corev1.ConfigMap
			if err := json.Unmarshal(out.Bytes(), &cm); err != nil {
				return fmt.Errorf("kube-public/cluster-info: %w", err)
			}
			if _, ok := cm.Data[key]; ok {
				return nil
			}
			last = "no key " + key + " yet"
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-public/cluster-info not signed for the bootstrap token after %s (%s): is the controller-manager running with the bootstrapsigner controller?", timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// deniedFor turns an API that keeps refusing the admin kubeconfig into an error: that does not
// heal by waiting (a bootstrapper that did not bind the admin's group, say), unlike an API server
// still starting.
type deniedFor struct{ since time.Time }

const deniedLimit = 15 * time.Second

func (d *deniedFor) check(err error) error {
	if err == nil || !(strings.Contains(err.Error(), "Forbidden") || strings.Contains(err.Error(), "Unauthorized")) {
		d.since = time.Time{}
		return nil
	}
	if d.since.IsZero() {
		d.since = time.Now()
	}
	if time.Since(d.since) < deniedLimit {
		return nil
	}
	return fmt.Errorf("the API refuses the admin kubeconfig for %s: %w", deniedLimit, err)
}

// etcdClientURLsAnnotation is where kubeadm's etcd mirror Pods carry their client URL; kubeadm's control-plane
// join reads the etcd endpoints from it.
const etcdClientURLsAnnotation = "kubeadm.kubernetes.io/etcd.advertise-client-urls"

// waitEtcdMirrorPod polls until the first control plane's etcd mirror Pod, with kubeadm's client-URL annotation,
// is in the API. kubeadm's control-plane join finds the etcd cluster only through those Pods and gives up after its
// timeouts.kubernetesAPICall (1m); a kubelet that missed creating the mirror Pod while its API server started
// tries again at its next sync (TestHA once saw kubeadm join fail with "could not retrieve the list of etcd
// endpoints").
func waitEtcdMirrorPod(ctx context.Context, st *State, cpName string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		cmd, err := Kubectl(ctx, st, "-n", "kube-system", "get", "pod", "etcd-"+cpName, "-o", "json", "--request-timeout=5s")
		if err != nil {
			return err
		}
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			last = fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
		} else {
			var pod corev1.Pod
			if err := json.Unmarshal(out.Bytes(), &pod); err != nil {
				return fmt.Errorf("kube-system/etcd-%s: %w", cpName, err)
			}
			if pod.Annotations[etcdClientURLsAnnotation] != "" {
				return nil
			}
			last = "no annotation " + etcdClientURLsAnnotation
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the etcd mirror Pod kube-system/etcd-%s is not in the API after %s (%s): kubeadm's control-plane joins need it", cpName, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
