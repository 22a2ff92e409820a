package loadbalancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// DefaultFollowInterval is how often Follow reads the API servers' EndpointSlice.
const DefaultFollowInterval = 2 * time.Second

// APIServers lists every API server of the cluster as HOST:PORT, from the EndpointSlice default/kubernetes that
// the API servers keep themselves (each adds itself while it runs and removes itself when it stops, through its
// endpoint reconciler): the ready endpoints' addresses at the "https" port. Sorted.
func APIServers(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	slice, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the EndpointSlice default/kubernetes: %w", err)
	}
	return addresses(slice)
}

func addresses(slice *discoveryv1.EndpointSlice) ([]string, error) {
	port := int32(0)
	for _, p := range slice.Ports {
		if p.Port != nil && (p.Name == nil || *p.Name == "https") {
			port = *p.Port
		}
	}
	if port == 0 {
		return nil, fmt.Errorf("the EndpointSlice %s/%s has no https port", slice.Namespace, slice.Name)
	}
	var out []string
	for _, e := range slice.Endpoints {
		if e.Conditions.Ready != nil && !*e.Conditions.Ready {
			continue
		}
		for _, a := range e.Addresses {
			out = append(out, net.JoinHostPort(a, strconv.Itoa(int(port))))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the EndpointSlice %s/%s lists no ready API server", slice.Namespace, slice.Name)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// State is what the load balancer keeps on disk: the last backend list it followed, so that a restart with no
// API server reachable through the seeds still knows every API server.
type State struct {
	Backends []string  `json:"backends"`
	Updated  time.Time `json:"updated"`
}

// ReadState reads the state file; a file that does not exist is no state (nil, nil).
func ReadState(file string) (*State, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w; delete it, and the load balancer starts from its seeds", file, err)
	}
	if err := validBackends(s.Backends); err != nil {
		return nil, fmt.Errorf("%s: %w; delete it, and the load balancer starts from its seeds", file, err)
	}
	return &s, nil
}

// WriteState writes the state file atomically (0644: it holds addresses, no secret), as kubeboot writes a node's
// files (nodefs.FS.WriteFile; the path is the host's, as given).
func WriteState(file string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return nodefs.FS{}.WriteFile(file, append(b, '\n'), 0o644)
}

// FollowOptions configure Follow.
type FollowOptions struct {
	// List returns the API servers (APIServers with a client).
	List func(ctx context.Context) ([]string, error)
	// StateFile keeps the last list; "" keeps none.
	StateFile string
	// Interval between reads; 0: DefaultFollowInterval.
	Interval time.Duration
	Now      func() time.Time
}

// Follow keeps lb's backends those List returns, every Interval, until ctx ends, and writes each new list to the
// state file. A failed read keeps the current list (the API may be unreachable for a while: that is when the
// list matters most); failures are logged when they start and when they end.
func (lb *LoadBalancer) Follow(ctx context.Context, opts FollowOptions) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultFollowInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	failing := false
	var written []string
	if s, err := ReadState(opts.StateFile); err == nil && s != nil && opts.StateFile != "" {
		written = s.Backends
	}
	for {
		list, err := opts.List(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing:
			lb.logf("following the API servers: %v; keeping %v", err, lb.Backends())
			failing = true
		case err == nil:
			if failing {
				lb.logf("following the API servers again: %v", list)
				failing = false
			}
			if _, serr := lb.SetBackends(list); serr != nil {
				lb.logf("following the API servers: %v", serr)
				break
			}
			if opts.StateFile != "" && !slices.Equal(list, written) {
				if werr := WriteState(opts.StateFile, State{Backends: list, Updated: opts.Now().UTC()}); werr != nil {
					lb.logf("keep the backend list in %s: %v", opts.StateFile, werr)
				} else {
					written = list
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(opts.Interval):
		}
	}
}
