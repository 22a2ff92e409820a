// Package markcontrolplane labels and taints a control-plane Node once its kubelet has registered it, as
// kubeadm's mark-control-plane phase does.
package markcontrolplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
)

// Labels every control-plane node carries, with the value "".
const (
	LabelControlPlane          = "node-role.kubernetes.io/control-plane"
	LabelExcludeFromExternalLB = "node.kubernetes.io/exclude-from-external-load-balancers"
)

// ControlPlaneTaint is kubeadm's default taint for control-plane nodes.
var ControlPlaneTaint = corev1.Taint{Key: LabelControlPlane, Effect: corev1.TaintEffectNoSchedule}

// pollInterval is how often the Node is looked for: cheap for the API server, and short because the rest of
// init waits on it.
const pollInterval = 200 * time.Millisecond

// Mark waits until the kubelet has registered the Node nodeName, then adds the control-plane labels and taints
// (keeping the Node's other taints; a configured taint replaces one with the same key and effect). It changes
// nothing when the Node is already marked. ctx bounds the whole wait.
func Mark(ctx context.Context, c kubernetes.Interface, nodeName string, taints []corev1.Taint) error {
	if nodeName == "" {
		return errors.New("marking the control-plane Node: no node name (nodeRegistration.name)")
	}
	var last error
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := markOnce(ctx, c, nodeName, taints)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return timedOut(ctx, nodeName, last)
		}
		if !apply.IsTransient(err) {
			return fmt.Errorf("marking Node %q as a control-plane node: %w", nodeName, err)
		}
		last = err
		select {
		case <-ctx.Done():
			return timedOut(ctx, nodeName, last)
		case <-tick.C:
		}
	}
}

func timedOut(ctx context.Context, nodeName string, last error) error {
	return fmt.Errorf("marking Node %q as a control-plane node: %w; last error: %w; check that the kubelet runs, "+
		"reaches the API server and registers under the name in nodeRegistration.name", nodeName, ctx.Err(), last)
}

// markOnce reads the Node and patches it if needed. Transient errors and a Node not registered yet come back
// as errors apply.IsTransient accepts.
func markOnce(ctx context.Context, c kubernetes.Interface, nodeName string, taints []corev1.Taint) error {
	node, err := c.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: the kubelet has not registered the Node", apply.ErrNotYet)
	}
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	// The kubelet registers the Node with its labels; one without even the hostname label is not finished.
	if _, ok := node.Labels[corev1.LabelHostname]; !ok {
		return fmt.Errorf("%w: the Node has no %s label", apply.ErrNotYet, corev1.LabelHostname)
	}
	patch, err := Patch(node, taints)
	if err != nil || patch == nil {
		return err
	}
	if _, err := c.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	return nil
}

// Patch is the JSON merge patch that marks node, or nil if node is already marked. It carries the Node's
// resourceVersion: the taint list is replaced as a whole, so a concurrent change to it (the node lifecycle
// controller removing node.kubernetes.io/not-ready) must fail with a Conflict rather than be undone.
func Patch(node *corev1.Node, taints []corev1.Taint) ([]byte, error) {
	type metadata struct {
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels,omitempty"`
	}
	type spec struct {
		Taints []corev1.Taint `json:"taints"`
	}
	type patch struct {
		Metadata metadata `json:"metadata"`
		Spec     *spec    `json:"spec,omitempty"`
	}
	p := patch{Metadata: metadata{ResourceVersion: node.ResourceVersion}}
	for _, l := range []string{LabelControlPlane, LabelExcludeFromExternalLB} {
		if v, ok := node.Labels[l]; !ok || v != "" {
			if p.Metadata.Labels == nil {
				p.Metadata.Labels = map[string]string{}
			}
			p.Metadata.Labels[l] = ""
		}
	}
	if merged, changed := mergeTaints(node.Spec.Taints, taints); changed {
		p.Spec = &spec{Taints: merged}
	}
	if p.Metadata.Labels == nil && p.Spec == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding the Node patch: %w", err)
	}
	return b, nil
}

// mergeTaints puts the wanted taints first, then every existing taint with another key or effect (the API
// allows one taint per key and effect). changed is false when every wanted taint is already there as is.
func mergeTaints(existing, wanted []corev1.Taint) (merged []corev1.Taint, changed bool) {
	for _, w := range wanted {
		found := false
		for _, e := range existing {
			if e.Key == w.Key && e.Effect == w.Effect && e.Value == w.Value {
				found = true
				break
			}
		}
		if !found {
			changed = true
		}
	}
	if !changed {
		return existing, false
	}
	merged = append(merged, wanted...)
	for _, e := range existing {
		replaced := false
		for _, w := range wanted {
			if e.MatchTaint(&w) {
				replaced = true
				break
			}
		}
		if !replaced {
			merged = append(merged, e)
		}
	}
	return merged, true
}
