package nodebootstrap

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var crbGR = schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}

func TestApplyCreatesUpstreamBindings(t *testing.T) {
	c := fake.NewClientset()
	if err := Apply(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ role, kind, group string }{
		"kubeadm:kubelet-bootstrap":                     {"system:node-bootstrapper", "Group", "system:bootstrappers:kubeadm:default-node-token"},
		"kubeadm:node-autoapprove-bootstrap":            {"system:certificates.k8s.io:certificatesigningrequests:nodeclient", "Group", "system:bootstrappers:kubeadm:default-node-token"},
		"kubeadm:node-autoapprove-certificate-rotation": {"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "Group", "system:nodes"},
		"kubeadm:get-nodes":                             {"kubeadm:get-nodes", "Group", "system:bootstrappers:kubeadm:default-node-token"},
		// 1.36+: apiserver-kubelet-client.crt has no group; this binding lets the API server call kubelets.
		"kubeadm:apiserver-kubelet-client": {"system:kubelet-api-admin", "User", "kube-apiserver-kubelet-client"},
	}
	list, err := c.RbacV1().ClusterRoleBindings().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(want) {
		t.Errorf("%d bindings stored, want %d", len(list.Items), len(want))
	}
	for name, w := range want {
		b, err := c.RbacV1().ClusterRoleBindings().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: w.role}
		wantSubjects := []rbacv1.Subject{{Kind: w.kind, Name: w.group}}
		if b.RoleRef != wantRef || !reflect.DeepEqual(b.Subjects, wantSubjects) {
			t.Errorf("%s: roleRef %+v subjects %+v\nwant     %+v %+v", name, b.RoleRef, b.Subjects, wantRef, wantSubjects)
		}
	}
	role, err := c.RbacV1().ClusterRoles().Get(t.Context(), "kubeadm:get-nodes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRules := []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("kubeadm:get-nodes rules = %+v", role.Rules)
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	c := fake.NewClientset()
	for i := range 2 {
		if err := Apply(t.Context(), c); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	updates := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "update" {
			updates++
		}
	}
	if want := len(Objects()); updates != want || want != 6 {
		t.Errorf("second run made %d updates, want one per object (%d of 6)", updates, want)
	}
}

func TestApplyRetriesConflict(t *testing.T) {
	c := fake.NewClientset(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:get-nodes", ResourceVersion: "9"}})
	conflicts := 0
	c.PrependReactor("update", "clusterrolebindings", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(crbGR, "kubeadm:get-nodes", errors.New("modified"))
		}
		return false, nil, nil
	})
	if err := Apply(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	b, err := c.RbacV1().ClusterRoleBindings().Get(t.Context(), "kubeadm:get-nodes", metav1.GetOptions{})
	if err != nil || len(b.Subjects) != 1 || b.RoleRef.Name != "kubeadm:get-nodes" {
		t.Fatalf("binding not updated after the conflict: %+v %v", b, err)
	}
}

func TestClusterAdminsBinding(t *testing.T) {
	b := ClusterAdminsBinding()
	if b.Name != "kubeadm:cluster-admins" ||
		b.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"}) ||
		!reflect.DeepEqual(b.Subjects, []rbacv1.Subject{{Kind: "Group", Name: "kubeadm:cluster-admins"}}) {
		t.Errorf("binding = %+v", b)
	}
}

func forbidCreate(c *fake.Clientset) {
	c.PrependReactor("create", "clusterrolebindings", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(crbGR, "kubeadm:cluster-admins", errors.New(`User "kubernetes-admin" cannot create resource "clusterrolebindings"`))
	})
}

func TestEnsureClusterAdmins(t *testing.T) {
	t.Run("admin can create it", func(t *testing.T) {
		admin, super := fake.NewClientset(), fake.NewClientset()
		if err := EnsureClusterAdmins(t.Context(), admin, super); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.RbacV1().ClusterRoleBindings().Get(t.Context(), "kubeadm:cluster-admins", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(super.Actions()) != 0 {
			t.Errorf("super-admin was used although admin.conf sufficed")
		}
	})
	t.Run("admin forbidden, super-admin creates it, admin waits for its rights", func(t *testing.T) {
		admin, super := fake.NewClientset(), fake.NewClientset()
		forbidCreate(admin)
		// The API server's RBAC cache lags: the first two reviews after the binding exists say no.
		reviews := 0
		admin.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			reviews++
			r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
			if ra := r.Spec.ResourceAttributes; ra == nil || ra.Verb != "*" || ra.Group != "*" || ra.Resource != "*" {
				t.Errorf("review asks %+v, want verb, group and resource *", ra)
			}
			r.Status.Allowed = reviews > 2
			return true, r, nil
		})
		if err := EnsureClusterAdmins(t.Context(), admin, super); err != nil {
			t.Fatal(err)
		}
		if _, err := super.RbacV1().ClusterRoleBindings().Get(t.Context(), "kubeadm:cluster-admins", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if reviews != 3 {
			t.Errorf("%d access reviews, want 3 (two refused, then allowed)", reviews)
		}
	})
	t.Run("admin never gets its rights: bounded, says why", func(t *testing.T) {
		admin, super := fake.NewClientset(), fake.NewClientset()
		forbidCreate(admin)
		admin.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
			r.Status.Reason = "no RBAC policy matched"
			return true, r, nil
		})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := EnsureClusterAdmins(ctx, admin, super)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) ||
			!strings.Contains(err.Error(), "the ClusterRoleBinding kubeadm:cluster-admins exists, but the API server does not yet let admin.conf do everything") ||
			!strings.Contains(err.Error(), "no RBAC policy matched") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("admin forbidden, no super-admin", func(t *testing.T) {
		admin := fake.NewClientset()
		forbidCreate(admin)
		err := EnsureClusterAdmins(t.Context(), admin, nil)
		want := `the ClusterRoleBinding kubeadm:cluster-admins is missing and admin.conf may not create it; it needs super-admin.conf, which this node does not have: ` +
			`create ClusterRoleBinding kubeadm:cluster-admins: clusterrolebindings.rbac.authorization.k8s.io "kubeadm:cluster-admins" is forbidden: User "kubernetes-admin" cannot create resource "clusterrolebindings"`
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
	})
	t.Run("super-admin fails too", func(t *testing.T) {
		admin, super := fake.NewClientset(), fake.NewClientset()
		forbidCreate(admin)
		forbidCreate(super)
		err := EnsureClusterAdmins(t.Context(), admin, super)
		want := `creating the ClusterRoleBinding kubeadm:cluster-admins with super-admin.conf: ` +
			`create ClusterRoleBinding kubeadm:cluster-admins: clusterrolebindings.rbac.authorization.k8s.io "kubeadm:cluster-admins" is forbidden: User "kubernetes-admin" cannot create resource "clusterrolebindings"`
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
	})
	t.Run("the API server starts: refused, then admin forbidden, then the review catches up", func(t *testing.T) {
		admin, super := fake.NewClientset(), fake.NewClientset()
		// 20 refused connections: asked again every adminPoll, this takes about a second; with a back-off
		// doubling up to a second it would take over 15.
		refused := 0
		for _, c := range []*fake.Clientset{admin, super} {
			c.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
				if refused < 20 {
					refused++
					return true, nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
				}
				return false, nil, nil
			})
		}
		forbidCreate(admin)
		reviews := 0
		admin.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			reviews++
			if reviews == 1 {
				// Before the RBAC bootstrap has made system:basic-user, the review itself is refused.
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}, "",
					errors.New(`User "kubernetes-admin" cannot create resource "selfsubjectaccessreviews"`))
			}
			r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
			r.Status.Allowed = reviews > 3
			return true, r, nil
		})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := EnsureClusterAdmins(ctx, admin, super); err != nil {
			t.Fatal(err)
		}
		if refused != 20 || reviews != 4 {
			t.Errorf("%d refused attempts and %d reviews, want 20 and 4", refused, reviews)
		}
		if _, err := super.RbacV1().ClusterRoleBindings().Get(t.Context(), "kubeadm:cluster-admins", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an attempt the starting API server holds past its bound is tried again", func(t *testing.T) {
		defer func(d time.Duration) { adminAttempt = d }(adminAttempt)
		adminAttempt = 50 * time.Millisecond
		admin, super := fake.NewClientset(), fake.NewClientset()
		forbidCreate(admin)
		held := 0
		super.PrependReactor("create", "clusterrolebindings", func(k8stesting.Action) (bool, runtime.Object, error) {
			if held < 2 {
				held++
				time.Sleep(2 * adminAttempt) // the fake ignores the request's context: answer as client-go would
				return true, nil, context.DeadlineExceeded
			}
			return false, nil, nil
		})
		admin.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
			r.Status.Allowed = true
			return true, r, nil
		})
		if err := EnsureClusterAdmins(t.Context(), admin, super); err != nil {
			t.Fatal(err)
		}
		if held != 2 {
			t.Errorf("%d held attempts, want 2", held)
		}
		if _, err := super.RbacV1().ClusterRoleBindings().Get(t.Context(), "kubeadm:cluster-admins", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the binding exists: admin.conf's AlreadyExists is enough", func(t *testing.T) {
		admin := fake.NewClientset(ClusterAdminsBinding())
		if err := EnsureClusterAdmins(t.Context(), admin, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stopped from outside while the API server starts: says so", func(t *testing.T) {
		admin := fake.NewClientset()
		admin.PrependReactor("create", "clusterrolebindings", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
		})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(120*time.Millisecond, cancel)
		err := EnsureClusterAdmins(ctx, admin, fake.NewClientset())
		want := "stopped while waiting for the API server to let admin.conf in: context canceled"
		if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
	})
	t.Run("API never answers", func(t *testing.T) {
		admin := fake.NewClientset()
		admin.PrependReactor("create", "clusterrolebindings", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
		})
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		err := EnsureClusterAdmins(ctx, admin, fake.NewClientset())
		if !errors.Is(err, context.DeadlineExceeded) || !apierrors.IsInternalError(err) {
			t.Fatalf("error = %v, want the deadline and the last API error", err)
		}
	})
}
