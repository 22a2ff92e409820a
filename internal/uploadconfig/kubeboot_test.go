package uploadconfig

import (
	"errors"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kubeboot.dev/kubeboot/internal/config"
)

func TestKubebootConfigRoundTrip(t *testing.T) {
	k := &config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{Enabled: true, Port: 7446}}
	c := fake.NewClientset()
	if err := UploadKubebootConfig(t.Context(), c, k); err != nil {
		t.Fatal(err)
	}
	role, err := c.RbacV1().Roles("kube-system").Get(t.Context(), KubebootConfigRBAC, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := role.Rules[0].ResourceNames; !reflect.DeepEqual(got, []string{KubebootConfigMap}) {
		t.Errorf("the Role allows %v, want only %s", got, KubebootConfigMap)
	}
	rb, err := c.RbacV1().RoleBindings("kube-system").Get(t.Context(), KubebootConfigRBAC, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: bootstrapTokenGroup}, {Kind: rbacv1.GroupKind, Name: nodesGroup}}
	if !reflect.DeepEqual(rb.Subjects, want) {
		t.Errorf("subjects %v, want %v", rb.Subjects, want)
	}
	got, err := ReadKubebootConfig(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if port, ok := got.NodeLocalAPIEndpointPort(); !ok || port != 7446 {
		t.Errorf("read back port %d, enabled %v; want 7446, true", port, ok)
	}
}

func TestReadKubebootConfigAbsent(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, KubebootConfigMap, errors.New("no RBAC"))
	internal := apierrors.NewInternalError(errors.New("etcd down"))
	for _, tc := range []struct {
		name    string
		err     error
		wantErr error
	}{
		{name: "not found"},
		{name: "forbidden (a cluster that did not grant it)", err: forbidden},
		{name: "other errors are returned", err: internal, wantErr: internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset()
			if tc.err != nil {
				c.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err })
			}
			got, err := ReadKubebootConfig(t.Context(), c)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if got != nil {
				t.Errorf("got %+v, want none", got)
			}
		})
	}
}

func TestParseKubebootConfigurationDefaults(t *testing.T) {
	k, err := ParseKubebootConfiguration("apiVersion: kubeboot.dev/v1alpha1\nkind: KubebootConfiguration\nnodeLocalAPIEndpoint:\n  enabled: true\n")
	if err != nil {
		t.Fatal(err)
	}
	if port, ok := k.NodeLocalAPIEndpointPort(); !ok || port != config.DefaultNodeLocalAPIEndpointPort {
		t.Errorf("port %d, enabled %v; want the default, true", port, ok)
	}
	if _, err := ParseKubebootConfiguration("apiVersion: kubeboot.dev/v1alpha1\nkind: KubebootConfiguration\nnodeLocalAPIEndpoint:\n  port: 0\n  bogus: 1\n"); err == nil {
		t.Error("an unknown field was accepted")
	}
}
