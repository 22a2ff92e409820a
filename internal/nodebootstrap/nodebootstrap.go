// Package nodebootstrap installs the RBAC kubeadm sets up during init so that nodes can join with a
// bootstrap token (post a CSR, have it approved, read their Node) and renew their client certificates, plus
// the kubeadm:cluster-admins binding that makes admin.conf an administrator.
package nodebootstrap

import (
	"context"
	"errors"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/pki"
)

// Names kubeadm uses; `kubeadm upgrade` and `kubeadm reset` look for exactly these.
const (
	KubeletBootstrap              = "kubeadm:kubelet-bootstrap"
	NodeAutoApproveBootstrap      = "kubeadm:node-autoapprove-bootstrap"
	NodeAutoApproveCertRotation   = "kubeadm:node-autoapprove-certificate-rotation"
	GetNodes                      = "kubeadm:get-nodes"
	APIServerKubeletClient        = "kubeadm:apiserver-kubelet-client"
	kubeletAPIAdminRole           = "system:kubelet-api-admin"
	ClusterAdmins                 = "kubeadm:cluster-admins" // both the group in admin.conf and the binding's name
	BootstrapTokenGroup           = "system:bootstrappers:kubeadm:default-node-token"
	NodesGroup                    = "system:nodes"
	nodeBootstrapperRole          = "system:node-bootstrapper"
	nodeClientCSRApprovalRole     = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
	selfNodeClientCSRApprovalRole = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
	clusterAdminRole              = "cluster-admin"
)

// Objects are the node bootstrap ClusterRoles and ClusterRoleBindings (everything but kubeadm:cluster-admins).
func Objects() []runtime.Object {
	return []runtime.Object{
		// Bootstrap tokens may post CSRs.
		groupBinding(KubeletBootstrap, nodeBootstrapperRole, BootstrapTokenGroup),
		// The csrapprover approves node client CSRs posted with a bootstrap token...
		groupBinding(NodeAutoApproveBootstrap, nodeClientCSRApprovalRole, BootstrapTokenGroup),
		// ...and renewals of node client certificates posted by the nodes themselves.
		groupBinding(NodeAutoApproveCertRotation, selfNodeClientCSRApprovalRole, NodesGroup),
		// join reads Nodes to refuse a second node of the same name.
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: GetNodes},
			Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}},
		},
		groupBinding(GetNodes, GetNodes, BootstrapTokenGroup),
		// The API server calls kubelets (logs, exec, port-forward) as apiserver-kubelet-client's user (1.36+).
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: APIServerKubeletClient},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: kubeletAPIAdminRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: pki.APIServerKubeletClientUser}},
		},
	}
}

// ClusterAdminsBinding binds the group kubeadm:cluster-admins (admin.conf's organization) to cluster-admin.
func ClusterAdminsBinding() *rbacv1.ClusterRoleBinding {
	return groupBinding(ClusterAdmins, clusterAdminRole, ClusterAdmins)
}

// Apply writes Objects.
func Apply(ctx context.Context, c kubernetes.Interface) error {
	return apply.Objects(ctx, c, Objects()...)
}

// adminPoll is how often EnsureClusterAdmins asks again while the API server starts or its RBAC cache catches up:
// a fixed short period rather than a back-off, because init's API phases start the moment admin.conf is let in.
const adminPoll = 50 * time.Millisecond

// adminAttempt bounds one attempt of EnsureClusterAdmins, so that an API server that accepts a request and holds
// it while it starts costs one attempt, not the whole wait. A variable for the tests.
var adminAttempt = 2 * time.Second

// EnsureClusterAdmins makes sure the kubeadm:cluster-admins binding exists and waits until the API server lets
// admin.conf do everything. admin.conf cannot create the binding before it exists (its group has no rights yet),
// so a Forbidden answer to admin is retried with superAdmin (super-admin.conf, group system:masters), as kubeadm
// does. superAdmin may be nil on nodes without super-admin.conf; the binding must then already exist.
//
// It may start before the API server does: refused connections and other transient answers (apply.IsTransient)
// are asked again every adminPoll until ctx ends, and so is a review that is refused or does not yet allow
// admin.conf everything (the API server's RBAC bootstrap creates system:basic-user and cluster-admin while it
// starts, and it authorizes from a cache of the RBAC objects). Any other error is returned at once.
func EnsureClusterAdmins(ctx context.Context, admin, superAdmin kubernetes.Interface) error {
	bound := false
	var last error
	for {
		done, err := ensureClusterAdminsOnce(ctx, admin, superAdmin, &bound)
		if done {
			return nil
		}
		if err != nil && !apply.IsTransient(err) && ctx.Err() == nil {
			return err
		}
		if err != nil && (ctx.Err() == nil || last == nil) {
			last = err
		}
		t := time.NewTimer(adminPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// Stopped from outside (a signal, another phase's failure): say so, not what the API server said last.
				return fmt.Errorf("stopped while waiting for the API server to let admin.conf in: %w", ctx.Err())
			}
			if bound {
				return fmt.Errorf("the ClusterRoleBinding %s exists, but the API server does not yet let admin.conf do everything: %w; last answer: %w", ClusterAdmins, ctx.Err(), last)
			}
			return fmt.Errorf("the API server did not let admin.conf or super-admin.conf create the ClusterRoleBinding %s: %w; last answer: %w", ClusterAdmins, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// ensureClusterAdminsOnce makes one attempt, bounded by adminAttempt: it creates the binding unless *bound says it
// exists, then asks the API server whether admin.conf may do everything. done is true once it may. An attempt cut
// short by its own bound is not yet an answer: a starting API server accepts connections well before it serves
// them, and a request sent then waits.
func ensureClusterAdminsOnce(parent context.Context, admin, superAdmin kubernetes.Interface, bound *bool) (done bool, err error) {
	ctx, cancel := context.WithTimeout(parent, adminAttempt)
	defer cancel()
	done, err = clusterAdminsAttempt(ctx, admin, superAdmin, bound)
	if err != nil && ctx.Err() != nil && parent.Err() == nil {
		err = fmt.Errorf("%w: the API server did not answer within %s: %w", apply.ErrNotYet, adminAttempt, err)
	}
	return done, err
}

func clusterAdminsAttempt(ctx context.Context, admin, superAdmin kubernetes.Interface, bound *bool) (done bool, err error) {
	if !*bound {
		err := createClusterAdmins(ctx, admin)
		switch {
		case err == nil:
			return true, nil // admin.conf could create it: it has the rights it needs
		case !apierrors.IsForbidden(err):
			return false, err
		case superAdmin == nil:
			return false, fmt.Errorf("the ClusterRoleBinding %s is missing and admin.conf may not create it; it needs super-admin.conf, which this node does not have: %w",
				ClusterAdmins, err)
		}
		if err := createClusterAdmins(ctx, superAdmin); err != nil {
			if apply.IsTransient(err) {
				return false, err
			}
			return false, fmt.Errorf("creating the ClusterRoleBinding %s with super-admin.conf: %w", ClusterAdmins, err)
		}
		*bound = true
	}
	r, err := admin.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"}},
	}, metav1.CreateOptions{})
	switch {
	case apierrors.IsForbidden(err):
		// Until the API server's RBAC bootstrap has made system:basic-user, nobody but system:masters may ask.
		return false, fmt.Errorf("%w: admin.conf may not yet ask what it may do: %w", apply.ErrNotYet, err)
	case err != nil:
		return false, fmt.Errorf("review of admin.conf's rights: %w", err)
	case !r.Status.Allowed:
		return false, fmt.Errorf("%w: admin.conf is not yet allowed everything (%s)", apply.ErrNotYet, r.Status.Reason)
	}
	return true, nil
}

// createClusterAdmins creates the kubeadm:cluster-admins binding with c, once; one that exists counts as created.
func createClusterAdmins(ctx context.Context, c kubernetes.Interface) error {
	_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, ClusterAdminsBinding(), metav1.CreateOptions{})
	if err == nil || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return fmt.Errorf("create ClusterRoleBinding %s: %w", ClusterAdmins, err)
}

func groupBinding(name, clusterRole, group string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: group}},
	}
}
