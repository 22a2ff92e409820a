// Package controlleraccounts creates, before kube-controller-manager starts its controllers, the kube-system
// ServiceAccounts those controllers run as.
//
// Why: with --use-service-account-credentials (kubeadm's flag) the controller-manager gets or creates one
// ServiceAccount per controller right before it starts that controller. On a new cluster that is three requests
// (a GET that finds nothing, a GET of the namespace, a POST), all through one client limited to 20 requests per
// second, so about 150 ms per controller. Its shared informers, the CSR signer's among them, start only after the
// last controller: a node that joins right after init waits about 5 s longer for its certificate. When the
// accounts exist already, the controller-manager needs one GET each.
//
// The accounts are the same objects the controller-manager would create (a name in kube-system, nothing else),
// and an account that exists is left as it is.
package controlleraccounts

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Namespace is where the controller-manager keeps its controllers' accounts.
const Namespace = metav1.NamespaceSystem

// The controller-manager flags the release table's lists depend on, with kubeadm's values.
const (
	flagCredentials    = "use-service-account-credentials"
	flagControllers    = "controllers"
	kubeadmControllers = "*,bootstrapsigner,tokencleaner"
)

// Plan returns the accounts to create for a controller-manager that runs command (its static Pod's command line)
// at kubernetesVersion, or none and the reason. The release table's list holds only for kubeadm's flags; for
// anything else the controller-manager creates its own accounts, as it always can.
func Plan(command []string, kubernetesVersion string) (names []string, reason string) {
	r, err := release.For(kubernetesVersion)
	if err != nil {
		return nil, err.Error()
	}
	flags := staticpod.ParseFlags(command)
	if got := flags.Get(flagCredentials); got != "true" {
		return nil, fmt.Sprintf("kube-controller-manager runs %s: its controllers do not use their own accounts", describe(flagCredentials, got))
	}
	if got := flags.Get(flagControllers); got != kubeadmControllers {
		return nil, fmt.Sprintf("kube-controller-manager runs %s, not kubeadm's --%s=%s", describe(flagControllers, got), flagControllers, kubeadmControllers)
	}
	return r.ControllerServiceAccounts, ""
}

func describe(name, value string) string {
	if value == "" {
		return "without --" + name
	}
	return "with --" + name + "=" + value
}

// maxConcurrent bounds the POSTs in flight: all of them fit in a few round trips without crowding the API server
// while it finishes starting.
const maxConcurrent = 12

// Create creates the named ServiceAccounts in Namespace concurrently, leaving any that exists as it is, and
// returns how many it created. Transient API errors are retried until ctx ends; every failure is returned, each
// naming its account.
func Create(ctx context.Context, c kubernetes.Interface, names []string) (int, error) {
	var created atomic.Int64
	errs := make([]error, len(names))
	apply.ForEach(len(names), maxConcurrent, func(i int) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: names[i]}}
		made := false
		err := apply.Retry(ctx, func(ctx context.Context) error {
			_, err := c.CoreV1().ServiceAccounts(Namespace).Create(ctx, sa, metav1.CreateOptions{})
			switch {
			case err == nil:
				made = true
				return nil
			case apierrors.IsAlreadyExists(err):
				return nil
			case apierrors.IsNotFound(err):
				// The API server creates kube-system itself, shortly after it starts serving.
				return fmt.Errorf("%w: %w", apply.ErrNotYet, err)
			}
			return err
		})
		if err != nil {
			errs[i] = fmt.Errorf("create ServiceAccount %s/%s: %w", Namespace, names[i], err)
			return
		}
		if made {
			created.Add(1)
		}
	})
	return int(created.Load()), errors.Join(errs...)
}
