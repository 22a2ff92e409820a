// Package restart restarts this node's control-plane components after their certificates were renewed: one at a
// time, each only once the one before it is healthy again, and only when the rest of the control plane can spare
// it, so that an HA cluster renewed node by node keeps etcd's quorum and a ready API server throughout. It is the
// step kubeadm's `certs renew` leaves to the user ("You must restart ...").
//
// How a component restarts: its running container is stopped through the CRI, and the kubelet, whose static Pod
// it is, starts a new container from the same manifest; the new process reads the renewed files. The manifests
// stay byte for byte what kubeadm (or kubeboot) wrote, the mirror Pod keeps its UID and the sandbox its network;
// only the Pod's restartCount grows. The alternatives do worse:
//   - moving the manifest out of the kubelet's staticPodPath and back (what people do by hand) touches files
//     kubeadm owns, and the kubelet then tears down the whole Pod, sandbox included, and sees the file back only
//     on its next look at the directory;
//   - deleting the mirror Pod through the API makes the kubelet recreate the mirror Pod, not the container, which
//     keeps running with the old certificates;
//   - stopping the Pod's sandbox restarts the container too, but recreates the sandbox for nothing;
//   - signalling the process directly bypasses the runtime, which kubeboot otherwise asks for everything.
//
// A static Pod's restartPolicy is Always (kubeadm sets none), so the kubelet starts the stopped container again at
// its next sync of the Pod. It holds back a container it finds exited, though, by its crash-loop back-off
// (kuberuntime's doBackOff: 10 s, doubling with every exit up to 5 min, forgotten after 10 min without one), so a
// component that restarted a few times lately (an upgrade, an earlier renewal) would wait minutes. The stopped
// container is therefore removed too when the runtime can, as cri.Recycle does: with no exited container to look
// at, the kubelet starts the next one at once.
package restart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Order is the order the components restart in: etcd first, then its client the API server, then the API
// server's clients.
var Order = []string{staticpod.EtcdName, staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName}

// readers maps each certificate `certs renew` knows (renewal's names) to the component that reads it. admin.conf
// and super-admin.conf are read by people and tools, no component: they restart nothing.
var readers = map[string]string{
	"etcd-server":              staticpod.EtcdName,
	"etcd-peer":                staticpod.EtcdName,
	"etcd-healthcheck-client":  staticpod.EtcdName,
	"apiserver":                staticpod.APIServerName,
	"apiserver-kubelet-client": staticpod.APIServerName,
	"apiserver-etcd-client":    staticpod.APIServerName,
	"front-proxy-client":       staticpod.APIServerName,
	"controller-manager.conf":  staticpod.ControllerManagerName,
	"scheduler.conf":           staticpod.SchedulerName,
}

// Components returns the components that read one of the certificates named, in Order.
func Components(certs []string) []string {
	var out []string
	for _, c := range Order {
		if slices.ContainsFunc(certs, func(name string) bool { return readers[name] == c }) {
			out = append(out, c)
		}
	}
	return out
}

// OnNode keeps the components that run on this node, those whose static Pod manifest is under fsys. With an
// external etcd, etcd is never one of them, whatever the manifests directory holds.
func OnNode(fsys nodefs.FS, components []string, externalEtcd bool) []string {
	var out []string
	for _, c := range components {
		if c == staticpod.EtcdName && externalEtcd {
			continue
		}
		if fsys.Exists(staticpod.Path(c)) {
			out = append(out, c)
		}
	}
	return out
}

// Runtime is what a restart asks of the container runtime (*cri.Client).
type Runtime interface {
	// ListContainers returns the containers carrying every given label.
	ListContainers(ctx context.Context, labels map[string]string) ([]cri.Container, error)
	// StopContainer stops a container, killing it once grace has passed.
	StopContainer(ctx context.Context, id string, grace time.Duration) error
}

// Prober says whether a component of this node is healthy.
type Prober interface {
	// Probe returns nil when component is healthy, and otherwise what is wrong.
	Probe(ctx context.Context, component string) error
}

// Cluster is the rest of the control plane, as the refusals see it.
type Cluster interface {
	// EtcdMembers lists the etcd members with their health.
	EtcdMembers(ctx context.Context) ([]etcd.MemberStatus, error)
	// APIServers lists the cluster's API servers, this node's marked Self.
	APIServers(ctx context.Context) ([]APIServer, error)
}

// LeaderHandOff is a Cluster that can also make another etcd member the leader before this node's member
// restarts (etcd.Client.HandOffLeadership); it returns the new leader's name, "" when nothing moved.
type LeaderHandOff interface {
	HandOffEtcdLeadership(ctx context.Context) (string, error)
}

// APIServer is one of the cluster's API servers.
type APIServer struct {
	// Name is its mirror Pod's name, or its endpoint when no Pod tells.
	Name string
	// Endpoint is its host:port, as the default/kubernetes EndpointSlice and kubeadm's annotation hold it.
	Endpoint string
	// Self: it is this node's.
	Self  bool
	Ready bool
	// Problem says why it is not ready.
	Problem string
	// ContainerID is the runtime's ID of the container its mirror Pod's status reports (without the
	// runtime:// prefix); "" when no Pod tells.
	ContainerID string
}

// Defaults of a Restarter.
const (
	// DefaultTimeout bounds each component's restart, from the stop of its container to its health: a few
	// seconds usually, more when the kubelet waits out a crash-loop back-off.
	DefaultTimeout = 2 * time.Minute
	// DefaultGrace is what the kubelet gives a Pod that sets no terminationGracePeriodSeconds (kubeadm's set
	// none): etcd hands over its leadership, the controller-manager and the scheduler their leases. The API server
	// gets cri.APIServerStopGrace instead, as in an upgrade: its requests in flight end within it, and its
	// watches would hold it for the whole 30 s (certs renew --restart's "stopped first" took 30.3-30.4 s on each
	// of TestHA's control planes).
	DefaultGrace    = 30 * time.Second
	defaultInterval = 500 * time.Millisecond
)

// Restarter restarts this node's components.
type Restarter struct {
	Runtime Runtime
	Probe   Prober
	Cluster Cluster
	// Out gets one line per component restarted, with its time.
	Out io.Writer
	// Now is the clock of those times; nil: time.Now.
	Now func() time.Time
	// Timeout bounds each component's restart; 0: DefaultTimeout.
	Timeout time.Duration
	// Interval is between two looks at the container or the health; 0: 500 ms.
	Interval time.Duration
	// Grace is how long a stopped container's process has to exit before it is killed; 0: DefaultGrace, and
	// cri.APIServerStopGrace for the API server.
	Grace time.Duration
}

// ErrUnsafe is wrapped by the refusals to restart: restarting would risk etcd's quorum or the last ready API
// server.
var ErrUnsafe = errors.New("the rest of the control plane is not healthy")

// Check refuses, wrapping ErrUnsafe, to restart components when the cluster cannot spare them: etcd unless every
// voting member is healthy, the API server unless every other API server is ready. Restarting the controller
// manager or the scheduler risks nothing: their other instances hold or take over the lease. A cluster where this
// node's is the only etcd member or API server is not refused; Check says on Out what will be unavailable.
func (r *Restarter) Check(ctx context.Context, components []string) error {
	soleEtcd, soleAPI, err := r.check(ctx, components)
	if err != nil {
		return err
	}
	if soleEtcd {
		fmt.Fprintf(r.Out, "[restart] etcd has this node's member only: etcd, and the API with it, is unavailable while it restarts\n")
	}
	if soleAPI {
		fmt.Fprintf(r.Out, "[restart] this node's API server is the cluster's only one: the API is unavailable while it restarts\n")
	}
	return nil
}

// check is Check's refusal; it also says whether this node's etcd member or API server is the only one.
func (r *Restarter) check(ctx context.Context, components []string) (soleEtcd, soleAPI bool, err error) {
	var problems []string
	if slices.Contains(components, staticpod.EtcdName) {
		members, err := r.Cluster.EtcdMembers(ctx)
		if err != nil {
			problems = append(problems, "etcd's health is unknown: "+err.Error())
		}
		voters := 0
		for _, m := range members {
			if m.IsLearner {
				continue
			}
			voters++
			if !m.Healthy {
				problems = append(problems, fmt.Sprintf("etcd member %s is not healthy: %s", memberName(m), m.Problem))
			}
		}
		soleEtcd = voters == 1
	}
	if slices.Contains(components, staticpod.APIServerName) {
		servers, err := r.Cluster.APIServers(ctx)
		if err != nil {
			problems = append(problems, "the API servers' readiness is unknown: "+err.Error())
		}
		others := 0
		for _, s := range servers {
			if s.Self {
				continue
			}
			others++
			if !s.Ready {
				problems = append(problems, fmt.Sprintf("API server %s (%s) is not ready: %s", s.Name, s.Endpoint, s.Problem))
			}
		}
		soleAPI = err == nil && others == 0
	}
	if len(problems) > 0 {
		err = fmt.Errorf("refusing to restart %s on this node: %w: %s", strings.Join(components, ", "), ErrUnsafe, strings.Join(problems, "; "))
	}
	return soleEtcd, soleAPI, err
}

func memberName(m etcd.MemberStatus) string {
	name := m.Name
	if name == "" {
		name = m.IDString()
	}
	return name + " (" + m.PeerURL() + ")"
}

// Restart restarts components, in the order given (Components' order), one at a time: it stops the running
// container of each through the runtime, waits for the kubelet to run a new one and for the component to be
// healthy, and says so on Out with the time it took. Before etcd and the API server it checks again that the
// cluster can spare them (see Check), waiting up to the timeout until it can: another node may have started its
// own restart since, or, on a single control plane, the API may still be catching up with etcd. The first component
// that fails, or does not come back healthy within the timeout, ends the restart; the error's hint says how to
// look at it and what was and was not restarted.
//
// etcd and the API server restart together when both are asked for: the API server of a kubeadm control plane
// reads only this node's etcd member, so while that member restarts it fails every request it holds. It is
// therefore stopped first, which drains it (it fails /readyz, the endpoint's load balancer sends new connections
// elsewhere, it finishes its requests in flight and sends its clients away); etcd restarts while it is down, and
// it is back only once etcd is.
func (r *Restarter) Restart(ctx context.Context, components []string) error {
	for i := 0; i < len(components); i++ {
		c := components[i]
		if c == staticpod.EtcdName && i+1 < len(components) && components[i+1] == staticpod.APIServerName {
			if err := r.restartEtcdBehindAPIServer(ctx, components[:i], components[i+2:]); err != nil {
				return err
			}
			i++
			continue
		}
		done, left := components[:i], components[i+1:]
		if c == staticpod.EtcdName || c == staticpod.APIServerName {
			if err := r.waitSafe(ctx, c); err != nil {
				return hint.With(err, progress(done, components[i:])+
					"; restart the rest once the control plane is healthy again (see `kubeboot etcd status`, `kubectl -n kube-system get pods -l tier=control-plane -o wide`)")
			}
		}
		start := r.now()
		if c == staticpod.EtcdName {
			r.handOff(ctx)
		}
		restarted, started, err := r.restartOne(ctx, c)
		if err != nil {
			return hint.With(err, lookAt(c)+progress(done, left))
		}
		if err := r.healthy(ctx, c, restarted, started, start, components[:i+1], left); err != nil {
			return err
		}
	}
	return nil
}

// restartEtcdBehindAPIServer restarts etcd and the API server together (see Restart): the API server stops
// first, then etcd, and each must come back healthy, etcd first.
func (r *Restarter) restartEtcdBehindAPIServer(ctx context.Context, done, left []string) error {
	both := []string{staticpod.EtcdName, staticpod.APIServerName}
	for _, c := range both {
		if err := r.waitSafe(ctx, c); err != nil {
			return hint.With(err, progress(done, append(both, left...))+
				"; restart the rest once the control plane is healthy again (see `kubeboot etcd status`, `kubectl -n kube-system get pods -l tier=control-plane -o wide`)")
		}
	}
	timeout := cmpOr(r.Timeout, DefaultTimeout)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := r.now()
	// Only stopped, not removed: the kubelet may start it again at once, before etcd restarts, and it would then
	// take requests it cannot finish. Its exited container is removed once etcd is back (below).
	oldAPI, err := r.stop(wctx, staticpod.APIServerName, false)
	if err != nil {
		return hint.With(stopFailed(ctx, staticpod.APIServerName, err), lookAt(staticpod.APIServerName)+progress(done, append(both, left...)))
	}
	if len(oldAPI) > 0 {
		fmt.Fprintf(r.Out, "[restart] kube-apiserver: stopped first, so that it finishes its requests before etcd, which it reads, restarts (%s)\n",
			r.now().Sub(start).Round(100*time.Millisecond))
	}
	etcdStart := r.now()
	r.handOff(ctx)
	restarted, _, err := r.restartOne(ctx, staticpod.EtcdName)
	if err != nil {
		return hint.With(err, lookAt(staticpod.EtcdName)+"the API server was stopped before it, and the kubelet starts it again; "+progress(done, left))
	}
	if err := r.healthy(ctx, staticpod.EtcdName, restarted, "", etcdStart, append(done, staticpod.EtcdName), append([]string{staticpod.APIServerName}, left...)); err != nil {
		return err
	}
	// The kubelet has been starting the API server again meanwhile: it turns healthy once it reaches etcd. An API
	// server it holds back by its crash-loop back-off starts at once without an exited container.
	wctx, cancel = context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cri.RemoveExitedInKubeSystemIfAble(wctx, r.Runtime, staticpod.APIServerName); err != nil {
		fmt.Fprintf(r.Out, "[restart] kube-apiserver: WARNING: remove its exited containers: %v; the kubelet starts it after its crash-loop back-off\n", err)
	}
	started, err := r.waitBack(ctx, wctx, staticpod.APIServerName, oldAPI, timeout)
	if err != nil {
		return hint.With(err, lookAt(staticpod.APIServerName)+progress(append(done, staticpod.EtcdName), left))
	}
	return r.healthy(ctx, staticpod.APIServerName, len(oldAPI) > 0, started, start, append(done, both...), left)
}

// handOff hands this node's etcd leadership to another member, if the cluster can (LeaderHandOff). A failed
// hand-off costs an election, not the restart: it says so and goes on.
func (r *Restarter) handOff(ctx context.Context) {
	h, ok := r.Cluster.(LeaderHandOff)
	if !ok {
		return
	}
	switch to, err := h.HandOffEtcdLeadership(ctx); {
	case err != nil:
		fmt.Fprintf(r.Out, "[restart] etcd: WARNING: %v; the members elect a new leader when it stops\n", err)
	case to != "":
		fmt.Fprintf(r.Out, "[restart] etcd: handed the leadership to %s\n", to)
	}
}

// healthy says that component is back (restarted: it had a container to stop; started: the new container) and,
// for the API server, waits until the cluster sees it Ready too.
func (r *Restarter) healthy(ctx context.Context, c string, restarted bool, started string, start time.Time, done, left []string) error {
	what := "restarted"
	if !restarted {
		what = "was not running; started by the kubelet"
	}
	at := r.now()
	fmt.Fprintf(r.Out, "[restart] %s: %s and healthy (%s)\n", c, what, at.Sub(start).Round(100*time.Millisecond))
	if c != staticpod.APIServerName {
		return nil
	}
	// What the next node's restart checks (Check) is the cluster's view, which follows the API server's own
	// /readyz by a kubelet status update and the endpoint reconciler: end only once it agrees, so that
	// node-by-node renewals never find this one not ready yet.
	if err := r.waitSeenReady(ctx, started); err != nil {
		return hint.With(err, "it answers /readyz on this node; look at `kubectl -n kube-system get pods -l component=kube-apiserver -o wide` and `kubectl get endpointslice kubernetes`; "+
			progress(done, left))
	}
	fmt.Fprintf(r.Out, "[restart] %s: Ready in the cluster (%s later)\n", c, r.now().Sub(at).Round(100*time.Millisecond))
	return nil
}

// lookAt is the start of a failed restart's hint.
func lookAt(component string) string {
	return fmt.Sprintf("look at it with `crictl ps -a --name %s`, `crictl logs CONTAINER` and the kubelet's log (`journalctl -u kubelet`); ", component)
}

// waitSeenReady waits, up to the timeout, until the cluster's list of API servers has this node's as ready, in a
// status that reports the container started (when known): until the kubelet reports it, the mirror Pod may
// still say Ready from before the restart, since the kubelet of a control plane reaches the cluster through its
// own API server and could not report the stop (seen in TestHA: the next node's renew then found this one not
// Ready). A list without this node's (an API server without kubeadm's advertise-address annotation, found by
// nothing) is no reason to wait.
func (r *Restarter) waitSeenReady(ctx context.Context, started string) error {
	wctx, cancel := context.WithTimeout(ctx, cmpOr(r.Timeout, DefaultTimeout))
	defer cancel()
	err := r.poll(ctx, wctx, func() error {
		servers, err := r.Cluster.APIServers(wctx)
		if err != nil {
			return err
		}
		for _, s := range servers {
			if s.Self && !s.Ready {
				return fmt.Errorf("API server %s (%s) is not ready in the cluster's view: %s", s.Name, s.Endpoint, s.Problem)
			}
			if s.Self && started != "" && s.ContainerID != "" && s.ContainerID != started {
				return fmt.Errorf("API server %s (%s): the cluster's view still reports its container %s, not the new %s: its kubelet has not reported the restart yet",
					s.Name, s.Endpoint, shortID(s.ContainerID), shortID(started))
			}
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("restart %s: %w", staticpod.APIServerName, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("%s did not turn Ready in the cluster within %s: %w", staticpod.APIServerName, cmpOr(r.Timeout, DefaultTimeout), err)
	}
	return nil
}

// waitSafe waits, up to the timeout, until the cluster can spare component (see Check), and otherwise returns the
// last refusal. Within a restart a refusal is often brief: on a single control plane the API answers again only a
// moment after etcd's restart, and another node's restart that began meanwhile ends within its own timeout.
func (r *Restarter) waitSafe(ctx context.Context, component string) error {
	wctx, cancel := context.WithTimeout(ctx, cmpOr(r.Timeout, DefaultTimeout))
	defer cancel()
	said := false
	err := r.poll(ctx, wctx, func() error {
		_, _, err := r.check(wctx, []string{component})
		if err != nil && !said {
			fmt.Fprintf(r.Out, "[restart] %s: waiting until the control plane can spare it: %v\n", component, err)
			said = true
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("restart %s: %w", component, context.Cause(ctx))
	}
	return err
}

// progress says, for a hint, what a restart that stopped did and did not do.
func progress(done, left []string) string {
	s := "the certificates are renewed"
	if len(done) > 0 {
		s += "; restarted: " + strings.Join(done, ", ")
	}
	if len(left) > 0 {
		s += "; not restarted: " + strings.Join(left, ", ")
	}
	return s
}

// errNoNewContainer is the state of a restart before the kubelet runs the new container.
var errNoNewContainer = errors.New("no new container")

// restartOne stops the running containers of component and waits for a new one, and then for its health. It
// reports whether there was a container to stop, and the new container's ID.
func (r *Restarter) restartOne(ctx context.Context, component string) (restarted bool, started string, err error) {
	timeout := cmpOr(r.Timeout, DefaultTimeout)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	old, err := r.stop(wctx, component, true)
	if err != nil {
		return false, "", stopFailed(ctx, component, err)
	}
	started, err = r.waitBack(ctx, wctx, component, old, timeout)
	return len(old) > 0, started, err
}

// stop stops the running containers of component, returning their IDs; with remove, it removes each once stopped
// too, when the runtime can (one the kubelet collected already counts as removed), so that the kubelet starts the
// next without its crash-loop back-off.
func (r *Restarter) stop(wctx context.Context, component string, remove bool) ([]string, error) {
	old, err := r.running(wctx, component)
	if err != nil {
		return nil, err
	}
	grace := r.Grace
	switch {
	case grace != 0:
	case component == staticpod.APIServerName:
		grace = cri.APIServerStopGrace
	default:
		grace = DefaultGrace
	}
	rm, canRemove := r.Runtime.(cri.ContainerRemover)
	for _, id := range old {
		if err := r.Runtime.StopContainer(wctx, id, grace); err != nil {
			return nil, fmt.Errorf("stop its container %s: %w", shortID(id), err)
		}
		if remove && canRemove {
			if err := rm.RemoveContainer(wctx, id); err != nil && status.Code(err) != codes.NotFound {
				return nil, fmt.Errorf("remove its stopped container %s: %w", shortID(id), err)
			}
		}
	}
	return old, nil
}

// waitBack waits, until wctx ends, for a container of component that is not one of old, and then for its health;
// it returns the new container's ID.
func (r *Restarter) waitBack(ctx, wctx context.Context, component string, old []string, timeout time.Duration) (string, error) {
	var started string
	err := r.poll(ctx, wctx, func() error {
		ids, err := r.running(wctx, component)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !slices.Contains(old, id) {
				started = id
				return nil
			}
		}
		return errNoNewContainer
	})
	if err == nil {
		err = r.poll(ctx, wctx, func() error { return r.Probe.Probe(wctx, component) })
	}
	if err != nil {
		return started, r.failed(ctx, component, timeout, old, started, err)
	}
	return started, nil
}

// stopFailed is the error of a component whose containers could not be listed or stopped.
func stopFailed(ctx context.Context, component string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("restart %s: %w", component, context.Cause(ctx))
	}
	return fmt.Errorf("restart %s: %w", component, err)
}

// failed is the error of a component that did not come back: the caller's end, or a *TimeoutError.
func (r *Restarter) failed(ctx context.Context, component string, timeout time.Duration, old []string, started string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("restart %s: %w", component, context.Cause(ctx))
	}
	return &TimeoutError{Component: component, Timeout: timeout, Stopped: old, Started: started, Last: err}
}

// running lists the IDs of component's running containers: the kubelet labels each with its Pod's namespace
// and its container's name, which for a static Pod is the component's.
func (r *Restarter) running(ctx context.Context, component string) ([]string, error) {
	return cri.RunningInKubeSystem(ctx, r.Runtime, component)
}

// poll calls f every interval until it returns nil, and returns nil then; once wctx ends, it returns f's last
// error. An end of ctx, the caller's, is the caller's to report.
func (r *Restarter) poll(ctx, wctx context.Context, f func() error) error {
	t := time.NewTicker(cmpOr(r.Interval, defaultInterval))
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-wctx.Done():
			return err
		case <-t.C:
		}
	}
}

func (r *Restarter) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// shortID is a container ID as crictl prints it.
func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

// TimeoutError is a component that did not come back healthy in time after its restart.
type TimeoutError struct {
	Component string
	Timeout   time.Duration
	// Stopped are the containers stopped; Started the new one, "" if the kubelet ran none.
	Stopped []string
	Started string
	// Last is what was last wrong.
	Last error
}

func (e *TimeoutError) Error() string {
	prefix := fmt.Sprintf("%s did not come back healthy within %s", e.Component, e.Timeout)
	stopped := make([]string, len(e.Stopped))
	for i, id := range e.Stopped {
		stopped[i] = shortID(id)
	}
	switch {
	case e.Started != "":
		return fmt.Sprintf("%s: its new container %s runs, but: %v", prefix, shortID(e.Started), e.Last)
	case errors.Is(e.Last, errNoNewContainer) && len(stopped) > 0:
		return fmt.Sprintf("%s: the kubelet ran no new container after its container %s was stopped", prefix, strings.Join(stopped, ", "))
	case errors.Is(e.Last, errNoNewContainer):
		return fmt.Sprintf("%s: no container of it runs", prefix)
	}
	return fmt.Sprintf("%s: %v", prefix, e.Last)
}

func (e *TimeoutError) Unwrap() error { return e.Last }
