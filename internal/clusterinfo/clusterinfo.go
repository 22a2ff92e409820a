// Package clusterinfo publishes kube-public/cluster-info, the ConfigMap a joining node reads anonymously to
// learn the API server's address and CA, signed with one jws-kubeconfig-<token-id> detached JWS per signing token.
// The controller-manager's bootstrapsigner keeps those signatures up to date; init writes the first ones itself
// (the same bytes the bootstrapsigner computes), so that a node can join the moment init returns.
package clusterinfo

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/token"
)

// RBACName names the Role and RoleBinding that let anonymous users read cluster-info (kubeadm's name).
const RBACName = "kubeadm:bootstrap-signer-clusterinfo"

// anonymousUser is the user the API server gives unauthenticated requests.
const anonymousUser = "system:anonymous"

// Kubeconfig renders the kubeconfig stored under the ConfigMap's "kubeconfig" key: exactly one cluster, named
// "" as kubeadm names it, with server = serverURL (https://<control-plane endpoint>) and the CA certificate.
// Joining nodes (kubeadm's and ours) require exactly one cluster and verify the JWS over these bytes.
func Kubeconfig(serverURL string, caPEM []byte) ([]byte, error) {
	u, err := url.Parse(serverURL)
	// Not valid UTF-8, the URL cannot go through the kubeconfig's YAML as it is (found by FuzzKubeconfig).
	if err != nil || !utf8.ValidString(serverURL) || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("cluster-info: server %q is not an https://host[:port] URL; check controlPlaneEndpoint and localAPIEndpoint", serverURL)
	}
	if err := checkCA(caPEM); err != nil {
		return nil, fmt.Errorf("cluster-info: %w", err)
	}
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			"": {Server: serverURL, CertificateAuthorityData: caPEM},
		},
	}
	b, err := clientcmd.Write(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster-info: encoding the kubeconfig: %w", err)
	}
	return b, nil
}

// checkCA makes sure caPEM is exactly what a kubeconfig expects: PEM certificates and nothing else.
func checkCA(caPEM []byte) error {
	rest := caPEM
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("the CA PEM holds a %q block; only CERTIFICATE blocks belong in cluster-info", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("the CA PEM holds an unreadable certificate: %w", err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("the CA PEM holds no certificate")
	}
	return nil
}

// Objects are everything cluster-info needs: the ConfigMap, signed with signers (the bootstrap tokens whose usages
// include signing), and the Role and RoleBinding that let system:anonymous get that one ConfigMap.
func Objects(serverURL string, caPEM []byte, signers []token.Token) ([]runtime.Object, error) {
	kubeconfig, err := Kubeconfig(serverURL, caPEM)
	if err != nil {
		return nil, err
	}
	data := map[string]string{bootstrapapi.KubeConfigKey: string(kubeconfig)}
	for _, t := range signers {
		// HS256 over the kubeconfig with the token's secret, exactly as the bootstrapsigner computes it: it finds
		// the signature it would write and leaves the ConfigMap alone.
		sig, err := jws.ComputeDetachedSignature(string(kubeconfig), t.ID, t.Secret)
		if err != nil {
			return nil, fmt.Errorf("cluster-info: sign with bootstrap token %q: %w", t.ID, err)
		}
		data[bootstrapapi.JWSSignatureKeyPrefix+t.ID] = sig
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespacePublic, Name: bootstrapapi.ConfigMapClusterInfo},
		Data:       data,
	}
	return append([]runtime.Object{cm}, RBAC()...), nil
}

// RBAC are the Role and RoleBinding that let system:anonymous get cluster-info; `upgrade apply` re-applies them
// without touching the ConfigMap and its signatures.
func RBAC() []runtime.Object {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespacePublic, Name: RBACName},
		Rules: []rbacv1.PolicyRule{{
			Verbs:         []string{"get"},
			APIGroups:     []string{""},
			Resources:     []string{"configmaps"},
			ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo},
		}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespacePublic, Name: RBACName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: RBACName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: anonymousUser}},
	}
	return []runtime.Object{role, binding}
}

// Publish writes cluster-info, signed with signers, and its RBAC. Rerunning it replaces the ConfigMap whole and so
// drops the signatures of other tokens for a moment; the bootstrapsigner watches the ConfigMap and adds them back.
func Publish(ctx context.Context, c kubernetes.Interface, serverURL string, caPEM []byte, signers []token.Token) error {
	objs, err := Objects(serverURL, caPEM, signers)
	if err != nil {
		return err
	}
	return apply.Objects(ctx, c, objs...)
}
