// Package kubeclient builds every Kubernetes API client kubeboot uses, from a kubeconfig file or from credentials
// in memory, so that request timeouts and rate limits are set in one place. What differs between uses is an
// Options value, and each use names its own (Command, Init, Bootstrap).
//
// A client built here does not retry a failed request (client-go only honours an API server's Retry-After): the
// callers that must wait out an API server that is starting or briefly away wrap their calls in apply.Retry,
// bounded by the configuration's timeouts.kubernetesAPICall.
package kubeclient

import (
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options are what differs between the clients of different uses. The zero value is client-go's defaults.
type Options struct {
	// Timeout bounds each request (rest.Config.Timeout); 0: no bound but the caller's context.
	Timeout time.Duration
	// QPS and Burst limit the rate of requests (rest.Config.QPS and Burst); 0: client-go's 5 per second, bursts of 10.
	QPS   float32
	Burst int
}

// The options of each use.
var (
	// Command is a command's few requests to a running cluster (the token commands).
	Command = Options{Timeout: 30 * time.Second}
	// Init is init's phases, which create the cluster's objects (RBAC, ConfigMaps, Secrets, the controller
	// ServiceAccounts, the addons) back to back, and upgrade's, which apply them again: a higher rate limit keeps
	// client-go's throttling out of their time.
	Init = Options{Timeout: 30 * time.Second, QPS: 100, Burst: 200}
	// Bootstrap is a joining node's requests with its TLS bootstrap credentials, and a joining control-plane
	// node's with its admin.conf: each bounded by 10 s, well within timeouts.kubernetesAPICall, inside which
	// apply.Retry tries again.
	Bootstrap = Options{Timeout: 10 * time.Second}
	// Follow is the load balancer's read of the API servers' EndpointSlice every two seconds: a short bound, so
	// that a read through a backend that just went away fails fast and the next one goes elsewhere.
	Follow = Options{Timeout: 5 * time.Second}
)

// LoadFile reads the kubeconfig file at path, as kubectl does: the file references in it are relative to the file.
func LoadFile(path string) (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", path)
}

// FromKubeconfig builds a client from a kubeconfig in memory, acting as its current context.
func FromKubeconfig(kc *clientcmdapi.Config, o Options) (kubernetes.Interface, error) {
	rc, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, err
	}
	return New(rc, o)
}

// New builds a client from rc with o's timeout and rate limit; rc itself is left as it is.
func New(rc *rest.Config, o Options) (kubernetes.Interface, error) {
	rc = rest.CopyConfig(rc)
	rc.Timeout = o.Timeout
	rc.QPS, rc.Burst = o.QPS, o.Burst
	return kubernetes.NewForConfig(rc)
}
