package uploadconfig

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
)

// kube-system/kubeboot-config holds the cluster's KubebootConfiguration, so that a node joined with kubeboot
// learns the kubeboot settings of the cluster (the node-local API endpoint) without a --config of its own.
// kubeadm never reads it.
const (
	KubebootConfigMap  = "kubeboot-config"
	KubebootConfigKey  = config.KindKubeboot
	KubebootConfigRBAC = "kubeboot:nodes-kubeboot-config"
)

// KubebootConfigObjects are kube-system/kubeboot-config and the Role and RoleBinding kubeboot:nodes-kubeboot-config,
// which let bootstrap tokens and nodes get that ConfigMap alone.
func KubebootConfigObjects(k *config.KubebootConfiguration) ([]runtime.Object, error) {
	if k == nil {
		return nil, errors.New("encoding the " + config.KindKubeboot + ": there is none")
	}
	b, err := config.MarshalKubebootConfiguration(k)
	if err != nil {
		return nil, fmt.Errorf("encoding the %s: %w", config.KindKubeboot, err)
	}
	return readableConfigMap(KubebootConfigMap, KubebootConfigKey, b, KubebootConfigRBAC, bootstrapTokenGroup, nodesGroup), nil
}

// UploadKubebootConfig writes KubebootConfigObjects (init phase upload-config/kubeboot).
func UploadKubebootConfig(ctx context.Context, c kubernetes.Interface, k *config.KubebootConfiguration) error {
	objs, err := KubebootConfigObjects(k)
	if err != nil {
		return err
	}
	return apply.Objects(ctx, c, objs...)
}

// ReadKubebootConfig reads the cluster's KubebootConfiguration from kube-system/kubeboot-config, defaulted and
// validated. It returns nil, and no error, when the cluster has none: the ConfigMap does not exist (a cluster
// made without the document, or by kubeadm) or the client may not read it (a cluster made by a kubeboot that did
// not grant it). Other errors are returned as they are, for the caller to retry or explain.
func ReadKubebootConfig(ctx context.Context, c kubernetes.Interface) (*config.KubebootConfiguration, error) {
	cm, err := c.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, KubebootConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	doc, ok := cm.Data[KubebootConfigKey]
	if !ok {
		return nil, fmt.Errorf("kube-system/%s has no key %s", KubebootConfigMap, KubebootConfigKey)
	}
	return ParseKubebootConfiguration(doc)
}

// ParseKubebootConfiguration decodes the key of kube-system/kubeboot-config strictly, and defaults and validates it.
func ParseKubebootConfiguration(doc string) (*config.KubebootConfiguration, error) {
	object := "kube-system/" + KubebootConfigMap
	docs, err := config.Load([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", object, err)
	}
	if docs.Kubeboot == nil {
		return nil, fmt.Errorf("%s: no %s in key %s", object, config.KindKubeboot, KubebootConfigKey)
	}
	k := docs.Kubeboot
	config.SetKubebootDefaults(k)
	if err := config.ValidateKubeboot(k, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", object, err)
	}
	return k, nil
}
