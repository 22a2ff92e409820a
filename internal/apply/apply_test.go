package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func meta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}}
}

var (
	gvrConfigMap = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrService   = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

// storedObject reads an object straight from the fake clientset's tracker, bypassing reactors.
func storedObject(t *testing.T, c *fake.Clientset, gvr schema.GroupVersionResource, ns, name string) runtime.Object {
	t.Helper()
	obj, err := c.Tracker().Get(gvr, ns, name)
	if err != nil {
		t.Fatalf("%s %s/%s not stored: %v", gvr.Resource, ns, name, err)
	}
	return obj
}

// verbs lists "verb resource" for every request the client saw.
func verbs(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestObjectCreatesEverySupportedKind(t *testing.T) {
	tests := []struct {
		obj runtime.Object
		gvr schema.GroupVersionResource
		ns  string
	}{
		{&corev1.ConfigMap{ObjectMeta: meta("kube-system", "cm"), Data: map[string]string{"k": "v"}}, gvrConfigMap, "kube-system"},
		{&corev1.Secret{ObjectMeta: meta("kube-system", "s"), Data: map[string][]byte{"k": []byte("v")}}, schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, "kube-system"},
		{&corev1.ServiceAccount{ObjectMeta: meta("kube-system", "sa")}, schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "kube-system"},
		{&corev1.Service{ObjectMeta: meta("kube-system", "svc"), Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10"}}, gvrService, "kube-system"},
		{&rbacv1.Role{ObjectMeta: meta("kube-public", "r"), Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}}}}, schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, "kube-public"},
		{&rbacv1.RoleBinding{ObjectMeta: meta("kube-public", "rb"), RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "r"}}, schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, "kube-public"},
		{&rbacv1.ClusterRole{ObjectMeta: meta("", "cr")}, schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, ""},
		{&rbacv1.ClusterRoleBinding{ObjectMeta: meta("", "crb"), RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "cr"}}, schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, ""},
		{&appsv1.Deployment{ObjectMeta: meta("kube-system", "dep")}, schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "kube-system"},
		{&appsv1.DaemonSet{ObjectMeta: meta("kube-system", "ds")}, schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, "kube-system"},
	}
	for _, tt := range tests {
		t.Run(tt.gvr.Resource, func(t *testing.T) {
			c := fake.NewClientset()
			want := tt.obj.DeepCopyObject()
			if err := Object(t.Context(), c, tt.obj); err != nil {
				t.Fatalf("Object: %v", err)
			}
			if !equality.Semantic.DeepEqual(tt.obj, want) {
				t.Errorf("Object modified the caller's object")
			}
			name := want.(metav1.Object).GetName()
			got := storedObject(t, c, tt.gvr, tt.ns, name)
			if !equality.Semantic.DeepEqual(got.(metav1.Object).GetLabels(), map[string]string{"app": name}) {
				t.Errorf("stored labels = %v", got.(metav1.Object).GetLabels())
			}
			if v := verbs(c); !equalStrings(v, []string{"create " + tt.gvr.Resource}) {
				t.Errorf("requests = %v, want one create", v)
			}
		})
	}
}

func TestObjectUpdatesExisting(t *testing.T) {
	stored := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cm", ResourceVersion: "7"},
		Data:       map[string]string{"old": "1"},
	}
	c := fake.NewClientset(stored)
	desired := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cm"}, Data: map[string]string{"new": "2"}}
	if err := Object(t.Context(), c, desired); err != nil {
		t.Fatalf("Object: %v", err)
	}
	if v := verbs(c); !equalStrings(v, []string{"create configmaps", "get configmaps", "update configmaps"}) {
		t.Fatalf("requests = %v", v)
	}
	sent := c.Actions()[2].(k8stesting.UpdateAction).GetObject().(*corev1.ConfigMap)
	if sent.ResourceVersion != "7" {
		t.Errorf("update sent resourceVersion %q, want the stored \"7\"", sent.ResourceVersion)
	}
	got := storedObject(t, c, gvrConfigMap, "kube-system", "cm").(*corev1.ConfigMap)
	if !equality.Semantic.DeepEqual(got.Data, map[string]string{"new": "2"}) {
		t.Errorf("stored data = %v, want the desired data only", got.Data)
	}
	if desired.ResourceVersion != "" {
		t.Errorf("caller's object was given resourceVersion %q", desired.ResourceVersion)
	}
}

func TestObjectKeepsServiceClusterIP(t *testing.T) {
	stored := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns", ResourceVersion: "3"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}},
	}
	c := fake.NewClientset(stored)
	desired := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "dns", Port: 53}}},
	}
	if err := Object(t.Context(), c, desired); err != nil {
		t.Fatalf("Object: %v", err)
	}
	got := storedObject(t, c, gvrService, "kube-system", "kube-dns").(*corev1.Service)
	if got.Spec.ClusterIP != "10.96.0.10" || !equalStrings(got.Spec.ClusterIPs, []string{"10.96.0.10"}) {
		t.Errorf("clusterIP = %q, clusterIPs = %v, want the stored 10.96.0.10", got.Spec.ClusterIP, got.Spec.ClusterIPs)
	}
	if len(got.Spec.Ports) != 1 || got.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("update did not carry the desired spec/labels: %+v", got)
	}
}

// A real API server refuses the create of an existing Service with a fixed cluster IP as Invalid ("provided IP
// is already allocated"), not AlreadyExists: found by kubeboot upgrade apply re-applying CoreDNS. It is updated.
func TestObjectUpdatesAServiceWhoseCreateIsInvalid(t *testing.T) {
	stored := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns", ResourceVersion: "3"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}},
	}
	c := fake.NewClientset(stored)
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "kube-dns",
		field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{"10.96.0.10"}, "failed to allocate IP 10.96.0.10: provided IP is already allocated")})
	failFirst(c, "create", "services", 1<<30, invalid)
	desired := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Name: "dns", Port: 53}}},
	}
	if err := Object(t.Context(), c, desired); err != nil {
		t.Fatalf("Object: %v", err)
	}
	if got := storedObject(t, c, gvrService, "kube-system", "kube-dns").(*corev1.Service); got.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("the Service was not updated: %+v", got)
	}
	// A create refused as Invalid for an object that does not exist stays an error.
	other := desired.DeepCopy()
	other.Name = "kube-dns-2"
	if err := Object(t.Context(), c, other); err == nil || !apierrors.IsInvalid(err) {
		t.Errorf("Object of an invalid new Service: %v, want the Invalid error", err)
	}
}

// failFirst makes the first n requests of verb on resource fail with err; later ones reach the tracker.
func failFirst(c *fake.Clientset, verb, resource string, n int, err error) *atomic.Int32 {
	var calls atomic.Int32
	c.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if int(calls.Add(1)) <= n {
			return true, nil, err
		}
		return false, nil, nil
	})
	return &calls
}

func TestObjectRetriesTransientErrors(t *testing.T) {
	cmGR := schema.GroupResource{Resource: "configmaps"}
	tests := []struct {
		name     string
		existing bool
		verb     string
		err      error
		requests []string
	}{
		{
			name: "conflict on update", existing: true, verb: "update",
			err:      apierrors.NewConflict(cmGR, "cm", errors.New("the object has been modified")),
			requests: []string{"create configmaps", "get configmaps", "update configmaps", "create configmaps", "get configmaps", "update configmaps"},
		},
		{
			name: "internal error on create", verb: "create",
			err:      apierrors.NewInternalError(errors.New("etcdserver: leader changed")),
			requests: []string{"create configmaps", "create configmaps"},
		},
		{
			name: "too many requests on get", existing: true, verb: "get",
			err:      apierrors.NewTooManyRequests("slow down", 0),
			requests: []string{"create configmaps", "get configmaps", "create configmaps", "get configmaps", "update configmaps"},
		},
		{
			name: "service unavailable on create", verb: "create",
			err:      apierrors.NewServiceUnavailable("starting"),
			requests: []string{"create configmaps", "create configmaps"},
		},
		{
			name: "connection refused on create", verb: "create",
			err:      &url.Error{Op: "Post", URL: "https://127.0.0.1:6443", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}},
			requests: []string{"create configmaps", "create configmaps"},
		},
		{
			name: "namespace not created yet", verb: "create",
			err:      apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "kube-public"),
			requests: []string{"create configmaps", "create configmaps"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := "kube-system"
			if tt.name == "namespace not created yet" {
				ns = "kube-public"
			}
			var seed []runtime.Object
			if tt.existing {
				seed = append(seed, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cm"}, Data: map[string]string{"old": "1"}})
			}
			c := fake.NewClientset(seed...)
			calls := failFirst(c, tt.verb, "configmaps", 1, tt.err)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			desired := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cm"}, Data: map[string]string{"new": "2"}}
			if err := Object(ctx, c, desired); err != nil {
				t.Fatalf("Object: %v", err)
			}
			if calls.Load() != 2 {
				t.Errorf("%s was called %d times, want 2 (one failure, one retry)", tt.verb, calls.Load())
			}
			if v := verbs(c); !equalStrings(v, tt.requests) {
				t.Errorf("requests = %v\nwant       %v", v, tt.requests)
			}
			got := storedObject(t, c, gvrConfigMap, ns, "cm").(*corev1.ConfigMap)
			if !equality.Semantic.DeepEqual(got.Data, map[string]string{"new": "2"}) {
				t.Errorf("stored data = %v", got.Data)
			}
		})
	}
}

func TestObjectReturnsPermanentErrorsAtOnce(t *testing.T) {
	tests := []struct {
		name    string
		obj     runtime.Object
		verb    string
		res     string
		err     error
		wantErr string
		is      func(error) bool
	}{
		{
			name: "forbidden", verb: "create", res: "configmaps",
			obj:     &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"}},
			err:     apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "cluster-info", errors.New(`User "kubernetes-admin" cannot create resource "configmaps"`)),
			wantErr: `apply ConfigMap kube-public/cluster-info: create: configmaps "cluster-info" is forbidden: User "kubernetes-admin" cannot create resource "configmaps"`,
			is:      apierrors.IsForbidden,
		},
		{
			name: "invalid", verb: "create", res: "clusterrolebindings",
			obj:     &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:get-nodes"}},
			err:     apierrors.NewInvalid(schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}, "kubeadm:get-nodes", nil),
			wantErr: `apply ClusterRoleBinding kubeadm:get-nodes: create: ClusterRoleBinding.rbac.authorization.k8s.io "kubeadm:get-nodes" is invalid`,
			is:      apierrors.IsInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			calls := failFirst(c, tt.verb, tt.res, 1000, tt.err)
			err := Object(t.Context(), c, tt.obj)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
			}
			if !tt.is(err) {
				t.Errorf("the API error is not reachable through the wrapping: %#v", err)
			}
			if calls.Load() != 1 {
				t.Errorf("%s was called %d times, want exactly 1", tt.verb, calls.Load())
			}
		})
	}
}

func TestObjectStopsAtContextDeadline(t *testing.T) {
	c := fake.NewClientset()
	calls := failFirst(c, "create", "configmaps", 1<<30, apierrors.NewServiceUnavailable("apiserver is starting"))
	// The clock starts before the deadline is set, so that the deadline cannot pass before the clock starts.
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	err := Object(ctx, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"}})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Object succeeded against an API that is never available")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !apierrors.IsServiceUnavailable(err) {
		t.Errorf("error should wrap both the deadline and the last API error: %v", err)
	}
	want := fmt.Sprintf("apply ConfigMap kube-system/kubeadm-config: gave up after %d attempts: context deadline exceeded; last error: create: apiserver is starting", calls.Load())
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	// Attempts at 0, 50, 150 and 350 ms (plus up to 20% jitter each): 3 or 4 fit in 400 ms; a tight loop
	// would make thousands.
	if n := calls.Load(); n < 3 || n > 4 {
		t.Errorf("%d attempts in 400ms, want 3-4 with a backoff from 50ms doubling", n)
	}
	if elapsed < 400*time.Millisecond || elapsed > 1500*time.Millisecond {
		t.Errorf("returned after %v, want soon after the 400ms deadline", elapsed)
	}
}

func TestObjectRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		obj     runtime.Object
		wantErr string
	}{
		{"unsupported type", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "p"}}, "apply: unsupported object type *v1.Pod"},
		{"untyped nil", nil, "apply: unsupported object type <nil>"},
		{"nil pointer", (*corev1.Secret)(nil), "apply: nil *v1.Secret"},
		{"no name", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system"}}, "apply ConfigMap kube-system/: the object has no name"},
		{"no namespace", &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r"}}, "apply Role r: the object has no namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			err := Object(t.Context(), c, tt.obj)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			if len(c.Actions()) != 0 {
				t.Errorf("sent requests for invalid input: %v", verbs(c))
			}
		})
	}
}

func TestObjectsAppliesAllAndJoinsErrors(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.CreateAction).GetObject().(*corev1.ConfigMap).Name
		if name == "cm-03" || name == "cm-11" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, name, errors.New("denied"))
		}
		return false, nil, nil
	})
	var objs []runtime.Object
	for i := range 20 {
		objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: fmt.Sprintf("cm-%02d", i)}})
	}
	err := Objects(t.Context(), c, objs...)
	want := "apply ConfigMap kube-system/cm-03: create: configmaps \"cm-03\" is forbidden: denied\n" +
		"apply ConfigMap kube-system/cm-11: create: configmaps \"cm-11\" is forbidden: denied"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant:\n%s", err, want)
	}
	list, lerr := c.CoreV1().ConfigMaps("kube-system").List(t.Context(), metav1.ListOptions{})
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(list.Items) != 18 {
		t.Errorf("%d ConfigMaps stored, want the 18 that were allowed", len(list.Items))
	}
	if err := Objects(t.Context(), c); err != nil {
		t.Errorf("Objects with nothing to do: %v", err)
	}
}

// The fake clientset serialises requests under one lock, so the concurrency bound is checked on forEach itself.
func TestForEachBoundsConcurrency(t *testing.T) {
	const n, limit = 30, 8
	var inFlight, peak atomic.Int32
	var once sync.Once
	full := make(chan struct{})
	done := make([]bool, n)
	ForEach(n, limit, func(i int) {
		cur := inFlight.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		if cur == limit {
			once.Do(func() { close(full) })
		}
		// Hold the first calls until the bound is reached, proving that limit calls do run at once.
		select {
		case <-full:
		case <-time.After(5 * time.Second):
		}
		done[i] = true
		inFlight.Add(-1)
	})
	if p := peak.Load(); p != limit {
		t.Errorf("peak concurrency = %d, want exactly %d", p, limit)
	}
	for i, d := range done {
		if !d {
			t.Errorf("call %d never ran", i)
		}
	}
}

func TestIsTransient(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"conflict", apierrors.NewConflict(gr, "x", errors.New("modified")), true},
		{"server timeout", apierrors.NewServerTimeout(gr, "create", 1), true},
		{"gateway timeout", apierrors.NewTimeoutError("slow", 1), true},
		{"too many requests", apierrors.NewTooManyRequests("busy", 1), true},
		{"internal", apierrors.NewInternalError(errors.New("boom")), true},
		{"unavailable", apierrors.NewServiceUnavailable("down"), true},
		{"connection refused", fmt.Errorf("post: %w", syscall.ECONNREFUSED), true},
		{"connection reset", &url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: syscall.ECONNRESET}, true},
		{"not yet", fmt.Errorf("node: %w", ErrNotYet), true},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "x", nil), false},
		{"not found", apierrors.NewNotFound(gr, "x"), false},
		{"unauthorized", apierrors.NewUnauthorized("who"), false},
		{"deadline in url error", &url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: context.DeadlineExceeded}, false},
		{"canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsTransient(tt.err); got != tt.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryGivesUpWhenContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := Retry(ctx, func(context.Context) error { called = true; return nil })
	if called {
		t.Error("op ran with a cancelled context")
	}
	if err == nil || err.Error() != "gave up before the first attempt: context canceled" || !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v", err)
	}
}
