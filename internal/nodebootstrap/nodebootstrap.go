// Package nodebootstrap installs the RBAC kubeadm sets up during init so that nodes can join with a
// bootstrap token (post a CSR, have it approved, read their Node) and renew their client certificates, plus
// the kubeadm:cluster-admins binding that makes admin.conf an administrator.
package nodebootstrap

import (
	"context"
	"fmt"

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

// EnsureClusterAdmins makes sure the kubeadm:cluster-admins binding exists. admin.conf cannot create it before
// it exists (its group has no rights yet), so a Forbidden answer to admin is retried with superAdmin
// (super-admin.conf, group system:masters), as kubeadm does. superAdmin may be nil on nodes without
// super-admin.conf; the binding must then already exist.
func EnsureClusterAdmins(ctx context.Context, admin, superAdmin kubernetes.Interface) error {
	err := apply.Object(ctx, admin, ClusterAdminsBinding())
	if err == nil || !apierrors.IsForbidden(err) {
		return err
	}
	if superAdmin == nil {
		return fmt.Errorf("the ClusterRoleBinding %s is missing and admin.conf may not create it; it needs super-admin.conf, which this node does not have: %w",
			ClusterAdmins, err)
	}
	if err := apply.Object(ctx, superAdmin, ClusterAdminsBinding()); err != nil {
		return fmt.Errorf("creating the ClusterRoleBinding %s with super-admin.conf: %w", ClusterAdmins, err)
	}
	// The API server authorizes from a cache of the RBAC objects: right after the binding is created admin.conf
	// may still be refused for a moment. Wait until the API server says admin.conf may do everything.
	err = apply.Retry(ctx, func(ctx context.Context) error {
		r, err := admin.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"}},
		}, metav1.CreateOptions{})
		switch {
		case err != nil:
			return err
		case !r.Status.Allowed:
			return fmt.Errorf("%w: admin.conf is not yet allowed everything (%s)", apply.ErrNotYet, r.Status.Reason)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the ClusterRoleBinding %s exists, but the API server does not yet let admin.conf do everything: %w", ClusterAdmins, err)
	}
	return nil
}

func groupBinding(name, clusterRole, group string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: group}},
	}
}
