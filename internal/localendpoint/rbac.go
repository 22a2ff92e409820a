package localendpoint

import (
	"context"

	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/nodebootstrap"
)

// RBACName is the name of the ClusterRole and of the ClusterRoleBinding that let nodes follow the API servers.
const RBACName = "kubeboot:local-endpoint"

// apiServersSlice is the EndpointSlice default/kubernetes the API servers keep (loadbalancer.APIServers).
const apiServersSlice = "kubernetes"

// RBAC is the ClusterRole kubeboot:local-endpoint, which allows reading the EndpointSlice default/kubernetes
// and nothing else (the load balancer only gets it, every 2 s: it neither lists nor watches), and its
// ClusterRoleBinding to the group system:nodes, so that the endpoint follows the API servers with the node's
// own credentials, and to the bootstrap tokens' group, so that a joining node seeds its endpoint with every API
// server before it has credentials of its own. The Node authorizer has no opinion on EndpointSlices; RBAC decides.
func RBAC() []runtime.Object {
	return []runtime.Object{
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: RBACName},
			Rules: []rbacv1.PolicyRule{{
				Verbs:         []string{"get"},
				APIGroups:     []string{discoveryv1.GroupName},
				Resources:     []string{"endpointslices"},
				ResourceNames: []string{apiServersSlice},
			}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: RBACName},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: RBACName},
			Subjects: []rbacv1.Subject{
				{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: nodebootstrap.NodesGroup},
				{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: nodebootstrap.BootstrapTokenGroup},
			},
		},
	}
}

// Apply writes RBAC.
func Apply(ctx context.Context, c kubernetes.Interface) error {
	return apply.Objects(ctx, c, RBAC()...)
}
