// Package apply writes Kubernetes objects idempotently: create, or on AlreadyExists replace the stored object
// with the desired one. Every write retries transient API errors with a short backoff until the context ends,
// so callers bound a whole apply with one context deadline (timeouts.kubernetesAPICall).
package apply

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// maxConcurrent bounds how many writes Objects keeps in flight: enough to hide round trips, few enough not to
// trip the API server's priority and fairness limits during init.
const maxConcurrent = 8

// Object creates obj, or replaces the existing object of the same kind, namespace and name with it.
// The caller's object is never modified. Supported: ConfigMap, Secret, ServiceAccount, Service, Role,
// RoleBinding, ClusterRole, ClusterRoleBinding, Deployment, DaemonSet (pointers to the k8s.io/api types).
func Object(ctx context.Context, client kubernetes.Interface, obj runtime.Object) error {
	if v := reflect.ValueOf(obj); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("apply: nil %T", obj)
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return createOrUpdate(ctx, "ConfigMap", o, client.CoreV1().ConfigMaps(o.GetNamespace()), nil)
	case *corev1.Secret:
		return createOrUpdate(ctx, "Secret", o, client.CoreV1().Secrets(o.GetNamespace()), nil)
	case *corev1.ServiceAccount:
		return createOrUpdate(ctx, "ServiceAccount", o, client.CoreV1().ServiceAccounts(o.GetNamespace()), nil)
	case *corev1.Service:
		return createOrUpdate(ctx, "Service", o, client.CoreV1().Services(o.GetNamespace()), keepClusterIP)
	case *rbacv1.Role:
		return createOrUpdate(ctx, "Role", o, client.RbacV1().Roles(o.GetNamespace()), nil)
	case *rbacv1.RoleBinding:
		return createOrUpdate(ctx, "RoleBinding", o, client.RbacV1().RoleBindings(o.GetNamespace()), nil)
	case *rbacv1.ClusterRole:
		return createOrUpdate(ctx, "ClusterRole", o, client.RbacV1().ClusterRoles(), nil)
	case *rbacv1.ClusterRoleBinding:
		return createOrUpdate(ctx, "ClusterRoleBinding", o, client.RbacV1().ClusterRoleBindings(), nil)
	case *appsv1.Deployment:
		return createOrUpdate(ctx, "Deployment", o, client.AppsV1().Deployments(o.GetNamespace()), nil)
	case *appsv1.DaemonSet:
		return createOrUpdate(ctx, "DaemonSet", o, client.AppsV1().DaemonSets(o.GetNamespace()), nil)
	default:
		return fmt.Errorf("apply: unsupported object type %T", obj)
	}
}

// Objects applies independent objects concurrently (at most 8 writes at a time) and returns every failure,
// joined in the order of objs.
func Objects(ctx context.Context, client kubernetes.Interface, objs ...runtime.Object) error {
	errs := make([]error, len(objs))
	ForEach(len(objs), maxConcurrent, func(i int) {
		errs[i] = Object(ctx, client, objs[i])
	})
	return errors.Join(errs...)
}

// ForEach calls fn(0..n-1) with at most limit calls running at once and returns when all have returned.
func ForEach(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// typedClient is the part of every generated typed client (ConfigMapInterface, RoleInterface, ...) apply needs.
type typedClient[T any] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// object is a pointer to a k8s.io/api type: it has metadata and can copy itself.
type object[T any] interface {
	metav1.Object
	DeepCopy() T
}

// createOrUpdate writes desired through c. keep, when set, copies server-owned fields from the stored object
// into the object about to be sent (for Services: the allocated cluster IPs, which are immutable).
func createOrUpdate[T object[T]](ctx context.Context, kind string, desired T, c typedClient[T], keep func(stored, out T)) error {
	what := describe(kind, desired)
	if desired.GetName() == "" {
		return fmt.Errorf("apply %s: the object has no name", what)
	}
	if desired.GetNamespace() == "" && namespaced(kind) {
		return fmt.Errorf("apply %s: the object has no namespace", what)
	}
	err := Retry(ctx, func(ctx context.Context) error {
		_, err := c.Create(ctx, desired.DeepCopy(), metav1.CreateOptions{})
		if err == nil {
			return nil
		}
		createErr := err
		if !apierrors.IsAlreadyExists(err) && !apierrors.IsInvalid(err) {
			if apierrors.IsNotFound(err) && systemNamespaces[desired.GetNamespace()] {
				// The API server creates kube-system and kube-public itself, shortly after it starts serving.
				return fmt.Errorf("create: %w: %w", ErrNotYet, err)
			}
			return fmt.Errorf("create: %w", err)
		}
		// An existing object may also be refused as Invalid rather than AlreadyExists: the API server checks a
		// Service's fixed cluster IP, which the existing Service holds, before its name. It is updated then too.
		stored, err := c.Get(ctx, desired.GetName(), metav1.GetOptions{})
		if apierrors.IsInvalid(createErr) {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("create: %w", createErr)
			}
		}
		if err != nil {
			if apierrors.IsNotFound(err) {
				// Deleted between our create and get: the next attempt creates it again.
				return fmt.Errorf("get: %w: %w", ErrNotYet, err)
			}
			return fmt.Errorf("get: %w", err)
		}
		out := desired.DeepCopy()
		// Keeping the stored resourceVersion makes the update conditional: a concurrent writer turns it into a
		// Conflict, which is retried from the create step with fresh state.
		out.SetResourceVersion(stored.GetResourceVersion())
		if keep != nil {
			keep(stored, out)
		}
		if _, err := c.Update(ctx, out, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply %s: %w", what, err)
	}
	return nil
}

func keepClusterIP(stored, out *corev1.Service) {
	if out.Spec.ClusterIP == "" {
		out.Spec.ClusterIP = stored.Spec.ClusterIP
	}
	if len(out.Spec.ClusterIPs) == 0 {
		out.Spec.ClusterIPs = stored.Spec.ClusterIPs
	}
}

var systemNamespaces = map[string]bool{metav1.NamespaceSystem: true, metav1.NamespacePublic: true, metav1.NamespaceDefault: true}

func namespaced(kind string) bool {
	return kind != "ClusterRole" && kind != "ClusterRoleBinding"
}

func describe(kind string, o metav1.Object) string {
	if o.GetNamespace() == "" {
		return kind + " " + o.GetName()
	}
	return kind + " " + o.GetNamespace() + "/" + o.GetName()
}
