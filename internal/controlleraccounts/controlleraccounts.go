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
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/apply"
)

// Namespace is where the controller-manager keeps its controllers' accounts.
const Namespace = metav1.NamespaceSystem

// Minor is the Kubernetes minor version Names was taken from.
const Minor = 34

// Names are the ServiceAccounts kube-controller-manager v1.34 creates with kubeadm's flags
// (--use-service-account-credentials=true --controllers=*,bootstrapsigner,tokencleaner). They were read from a
// cluster made by upstream kubeadm v1.34.4; the lab's TestLabKubeadm compares them with such a cluster on every run.
var Names = []string{
	"attachdetach-controller",
	"bootstrap-signer",
	"certificate-controller",
	"clusterrole-aggregation-controller",
	"cronjob-controller",
	"daemon-set-controller",
	"deployment-controller",
	"disruption-controller",
	"endpoint-controller",
	"endpointslice-controller",
	"endpointslicemirroring-controller",
	"ephemeral-volume-controller",
	"expand-controller",
	"generic-garbage-collector",
	"horizontal-pod-autoscaler",
	"job-controller",
	"legacy-service-account-token-cleaner",
	"namespace-controller",
	"node-controller",
	"persistent-volume-binder",
	"pod-garbage-collector",
	"pv-protection-controller",
	"pvc-protection-controller",
	"replicaset-controller",
	"replication-controller",
	"resource-claim-controller",
	"resourcequota-controller",
	"root-ca-cert-publisher",
	"service-account-controller",
	"service-cidrs-controller",
	"statefulset-controller",
	"token-cleaner",
	"ttl-after-finished-controller",
	"ttl-controller",
	"validatingadmissionpolicy-status-controller",
	"volumeattributesclass-protection-controller",
}

// The controller-manager flags Names depends on, with kubeadm's values.
const (
	flagCredentials    = "use-service-account-credentials"
	flagControllers    = "controllers"
	kubeadmControllers = "*,bootstrapsigner,tokencleaner"
)

// Plan returns the accounts to create for a controller-manager that runs command (its static Pod's command line)
// at kubernetesVersion, or none and the reason. Names holds only for the flags and the minor version it was
// taken from; for anything else the controller-manager creates its own accounts, as it always can.
func Plan(command []string, kubernetesVersion string) (names []string, reason string) {
	v, err := version.ParseSemantic(kubernetesVersion)
	if err != nil {
		return nil, fmt.Sprintf("Kubernetes version %q: %v", kubernetesVersion, err)
	}
	if v.Minor() != Minor {
		return nil, fmt.Sprintf("the list of accounts is kube-controller-manager v1.%d's, this control plane is %s", Minor, kubernetesVersion)
	}
	if got := flag(command, flagCredentials); got != "true" {
		return nil, fmt.Sprintf("kube-controller-manager runs %s: its controllers do not use their own accounts", describe(flagCredentials, got))
	}
	if got := flag(command, flagControllers); got != kubeadmControllers {
		return nil, fmt.Sprintf("kube-controller-manager runs %s, not kubeadm's --%s=%s", describe(flagControllers, got), flagControllers, kubeadmControllers)
	}
	return Names, ""
}

func describe(name, value string) string {
	if value == "" {
		return "without --" + name
	}
	return "with --" + name + "=" + value
}

// flag returns the value of the last --name=value in command, as the flag parser does; "" if there is none.
func flag(command []string, name string) string {
	value := ""
	for _, a := range command {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			value = v
		}
	}
	return value
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
