package markcontrolplane

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var (
	nodesGVR = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	notReady = corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}
)

func node(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "cp1", ResourceVersion: "42", Labels: labels},
		Spec:       corev1.NodeSpec{Taints: taints},
	}
}

func registered(extra ...string) map[string]string {
	l := map[string]string{"kubernetes.io/hostname": "cp1"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func storedNode(t *testing.T, c *fake.Clientset) *corev1.Node {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), "cp1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func patches(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}

func TestMark(t *testing.T) {
	custom := corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoExecute}
	tests := []struct {
		name       string
		node       *corev1.Node
		taints     []corev1.Taint
		wantTaints []corev1.Taint
		wantPatch  string // "" when no patch may be sent
	}{
		{
			name:       "fresh node",
			node:       node(registered(), notReady),
			taints:     []corev1.Taint{ControlPlaneTaint},
			wantTaints: []corev1.Taint{ControlPlaneTaint, notReady},
			wantPatch: `{"metadata":{"resourceVersion":"42","labels":{"node-role.kubernetes.io/control-plane":"","node.kubernetes.io/exclude-from-external-load-balancers":""}},` +
				`"spec":{"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"},{"key":"node.kubernetes.io/not-ready","effect":"NoSchedule"}]}}`,
		},
		{
			name:       "no taints configured",
			node:       node(registered()),
			taints:     nil,
			wantTaints: nil,
			wantPatch:  `{"metadata":{"resourceVersion":"42","labels":{"node-role.kubernetes.io/control-plane":"","node.kubernetes.io/exclude-from-external-load-balancers":""}}}`,
		},
		{
			name:       "already marked",
			node:       node(registered(LabelControlPlane, "", LabelExcludeFromExternalLB, ""), notReady, ControlPlaneTaint),
			taints:     []corev1.Taint{ControlPlaneTaint},
			wantTaints: []corev1.Taint{notReady, ControlPlaneTaint},
		},
		{
			name:       "taint with the same key and effect is replaced, label value reset",
			node:       node(registered(LabelControlPlane, "yes", LabelExcludeFromExternalLB, ""), corev1.Taint{Key: "dedicated", Value: "old", Effect: corev1.TaintEffectNoExecute}),
			taints:     []corev1.Taint{custom, ControlPlaneTaint},
			wantTaints: []corev1.Taint{custom, ControlPlaneTaint},
			wantPatch: `{"metadata":{"resourceVersion":"42","labels":{"node-role.kubernetes.io/control-plane":""}},` +
				`"spec":{"taints":[{"key":"dedicated","value":"infra","effect":"NoExecute"},{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(tt.node)
			if err := Mark(t.Context(), c, "cp1", tt.taints); err != nil {
				t.Fatal(err)
			}
			got := storedNode(t, c)
			if got.Labels[LabelControlPlane] != "" || got.Labels[LabelExcludeFromExternalLB] != "" ||
				len(got.Labels) != 3 {
				t.Errorf("labels = %v", got.Labels)
			}
			if !reflect.DeepEqual(got.Spec.Taints, tt.wantTaints) {
				t.Errorf("taints = %+v\nwant     %+v", got.Spec.Taints, tt.wantTaints)
			}
			p := patches(c)
			switch {
			case tt.wantPatch == "" && len(p) != 0:
				t.Errorf("patched an already marked node: %v", p)
			case tt.wantPatch != "" && (len(p) != 1 || p[0] != tt.wantPatch):
				t.Errorf("patches = %v\nwant      %s", p, tt.wantPatch)
			}
		})
	}
}

func TestMarkWaitsForRegistration(t *testing.T) {
	tests := []struct {
		name  string
		seed  []runtime.Object
		later func(c *fake.Clientset) error
	}{
		{
			name:  "node appears",
			later: func(c *fake.Clientset) error { return c.Tracker().Add(node(registered())) },
		},
		{
			name:  "node gets its hostname label",
			seed:  []runtime.Object{node(nil)},
			later: func(c *fake.Clientset) error { return c.Tracker().Update(nodesGVR, node(registered()), "") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(tt.seed...)
			const delay = 500 * time.Millisecond
			errc := make(chan error, 1)
			time.AfterFunc(delay, func() { errc <- tt.later(c) })
			start := time.Now()
			if err := Mark(t.Context(), c, "cp1", []corev1.Taint{ControlPlaneTaint}); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el < delay || el > delay+time.Second {
				t.Errorf("Mark returned after %v; the node was registered after %v", el, delay)
			}
			if got := storedNode(t, c); !reflect.DeepEqual(got.Spec.Taints, []corev1.Taint{ControlPlaneTaint}) {
				t.Errorf("taints = %+v", got.Spec.Taints)
			}
			if p := patches(c); len(p) != 1 {
				t.Errorf("%d patches, want 1 (none before registration)", len(p))
			}
		})
	}
}

// failFirst makes the first n requests of verb on nodes fail with err.
func failFirst(c *fake.Clientset, verb string, n int, err error) {
	calls := 0
	c.PrependReactor(verb, "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		if calls <= n {
			return true, nil, err
		}
		return false, nil, nil
	})
}

func TestMarkRetriesTransientErrors(t *testing.T) {
	tests := []struct {
		name, verb string
		err        error
	}{
		{"conflict on patch", "patch", apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "cp1", errors.New("the object has been modified"))},
		{"internal error on get", "get", apierrors.NewInternalError(errors.New("etcd"))},
		{"unavailable on patch", "patch", apierrors.NewServiceUnavailable("restarting")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(node(registered()))
			failFirst(c, tt.verb, 1, tt.err)
			if err := Mark(t.Context(), c, "cp1", []corev1.Taint{ControlPlaneTaint}); err != nil {
				t.Fatal(err)
			}
			if got := storedNode(t, c); got.Labels[LabelControlPlane] != "" || len(got.Spec.Taints) != 1 {
				t.Errorf("node not marked: %+v", got)
			}
			if p := patches(c); (tt.verb == "patch" && len(p) != 2) || (tt.verb == "get" && len(p) != 1) {
				t.Errorf("%d patches sent", len(p))
			}
		})
	}
}

func TestMarkForbidden(t *testing.T) {
	c := fake.NewClientset(node(registered()))
	failFirst(c, "patch", 1000, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "cp1", errors.New(`User "x" cannot patch resource "nodes"`)))
	err := Mark(t.Context(), c, "cp1", nil)
	want := `marking Node "cp1" as a control-plane node: patch: nodes "cp1" is forbidden: User "x" cannot patch resource "nodes"`
	if err == nil || err.Error() != want || !apierrors.IsForbidden(err) {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	if p := patches(c); len(p) != 1 {
		t.Errorf("%d patches, want exactly 1 (no retry of a permanent error)", len(p))
	}
}

func TestMarkStopsAtDeadline(t *testing.T) {
	c := fake.NewClientset()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Mark(ctx, c, "cp1", []corev1.Taint{ControlPlaneTaint})
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Errorf("returned %v after a 500ms deadline", el)
	}
	want := `marking Node "cp1" as a control-plane node: context deadline exceeded; last error: not ready yet: the kubelet has not registered the Node; ` +
		`check that the kubelet runs, reaches the API server and registers under the name in nodeRegistration.name`
	if err == nil || err.Error() != want || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	gets := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "get" {
			gets++
		}
	}
	if gets < 2 || gets > 5 {
		t.Errorf("%d gets in 500ms, want polling every 200ms", gets)
	}
}

func TestMarkNeedsNodeName(t *testing.T) {
	err := Mark(t.Context(), fake.NewClientset(), "", nil)
	if err == nil || !strings.Contains(err.Error(), "no node name (nodeRegistration.name)") {
		t.Fatalf("error = %v", err)
	}
}
