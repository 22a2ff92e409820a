// Package cri is the small part of the Container Runtime Interface kubeboot needs: is the runtime there and
// ready, are the images present, what happened to the control-plane containers, stopping one so the kubelet starts it again (a
// restart after a certificate renewal), and removing the pods on reset.
//
// Callers depend on the Runtime interface so they can be tested with a fake; Dial returns the real client.
package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the kubelet puts on every sandbox and container it creates; filter on them to find a static Pod.
const (
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// Timeouts. The dial one matches crictl's and kubeadm's default, so a missing runtime fails fast.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultCallTimeout = 30 * time.Second
)

// maxMsgSize matches the kubelet's limit: a node with many containers returns large List responses.
const maxMsgSize = 16 << 20

// ErrUnimplemented is returned (wrapped) when the runtime does not implement a CRI call, e.g. RuntimeConfig
// before containerd 2.0.
var ErrUnimplemented = errors.New("not implemented by the container runtime")

// ErrUnreachable is returned (wrapped) by Dial when nothing answers on the socket.
var ErrUnreachable = errors.New("container runtime not reachable")

// Runtime is what kubeboot asks of a container runtime.
type Runtime interface {
	Version(ctx context.Context) (Version, error)
	// Status reports the runtime's RuntimeReady and NetworkReady conditions.
	Status(ctx context.Context) (Status, error)
	// RuntimeConfig returns the runtime's own configuration; ErrUnimplemented on older runtimes.
	RuntimeConfig(ctx context.Context) (RuntimeConfig, error)
	// ImageStatus reports whether the image ref is present; a missing image is not an error.
	ImageStatus(ctx context.Context, ref string) (Image, error)
	// ListPodSandboxes returns the sandboxes carrying every given label (nil: all sandboxes).
	ListPodSandboxes(ctx context.Context, labels map[string]string) ([]PodSandbox, error)
	// ListContainers returns the containers carrying every given label (nil: all containers).
	ListContainers(ctx context.Context, labels map[string]string) ([]Container, error)
	ContainerStatus(ctx context.Context, id string) (ContainerStatus, error)
	StopPodSandbox(ctx context.Context, id string) error
	RemovePodSandbox(ctx context.Context, id string) error
	Close() error
}

// Version is the runtime's answer to the CRI Version call.
type Version struct {
	RuntimeName       string // "containerd"
	RuntimeVersion    string // "1.6.20~ds1"
	RuntimeAPIVersion string // "v1"
}

// Status holds the runtime's two standard conditions.
type Status struct {
	RuntimeReady bool
	NetworkReady bool
	// Reason and Message explain a RuntimeReady condition that is false.
	Reason  string
	Message string
}

// RuntimeConfig is the runtime's configuration as reported over CRI.
type RuntimeConfig struct {
	CgroupDriver string // "systemd" or "cgroupfs"
}

// Image is the result of ImageStatus.
type Image struct {
	Present  bool
	ID       string
	RepoTags []string
}

// State of a container, as the CRI names it without its CONTAINER_ prefix.
type ContainerState string

// Container states.
const (
	ContainerCreated ContainerState = "created"
	ContainerRunning ContainerState = "running"
	ContainerExited  ContainerState = "exited"
	ContainerUnknown ContainerState = "unknown"
)

// PodSandbox is one Pod's sandbox.
type PodSandbox struct {
	ID        string
	Name      string
	Namespace string
	UID       string
	Attempt   uint32
	Ready     bool
	CreatedAt time.Time
	Labels    map[string]string
}

// Container is one entry of ListContainers.
type Container struct {
	ID           string
	PodSandboxID string
	Name         string
	Attempt      uint32
	Image        string
	State        ContainerState
	CreatedAt    time.Time
	Labels       map[string]string
}

// ContainerStatus is what is known about one container, including why it exited.
type ContainerStatus struct {
	ID         string
	Name       string
	Attempt    uint32
	State      ContainerState
	ExitCode   int32
	Reason     string
	Message    string
	LogPath    string
	Image      string
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	Labels     map[string]string
}

// Client talks CRI v1 over a unix socket.
type Client struct {
	socket      string
	conn        *grpc.ClientConn
	runtime     runtimeapi.RuntimeServiceClient
	images      runtimeapi.ImageServiceClient
	callTimeout time.Duration
}

var _ Runtime = (*Client)(nil)

// SocketPath returns the filesystem path of criSocket ("unix:///run/x.sock" or "/run/x.sock").
func SocketPath(criSocket string) (string, error) {
	p := criSocket
	if rest, ok := strings.CutPrefix(criSocket, "unix://"); ok {
		p = rest
	} else if strings.Contains(criSocket, "://") {
		return "", fmt.Errorf("unsupported CRI socket %q: only unix sockets are supported, e.g. unix:///var/run/containerd/containerd.sock", criSocket)
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("CRI socket %q is not an absolute path: use e.g. unix:///var/run/containerd/containerd.sock", criSocket)
	}
	return p, nil
}

// Dial connects to the runtime at criSocket. It fails within DefaultDialTimeout (or ctx's earlier deadline)
// with a message naming the socket when nothing answers there.
func Dial(ctx context.Context, criSocket string) (*Client, error) {
	path, err := SocketPath(criSocket)
	if err != nil {
		return nil, err
	}
	// grpc connects lazily and retries forever; probing the socket first turns "no such file" or
	// "connection refused" into an immediate, readable error.
	d := net.Dialer{Timeout: DefaultDialTimeout}
	probe, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, unreachable(criSocket, err)
	}
	probe.Close()

	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, unreachable(criSocket, err)
	}
	return &Client{
		socket:      criSocket,
		conn:        conn,
		runtime:     runtimeapi.NewRuntimeServiceClient(conn),
		images:      runtimeapi.NewImageServiceClient(conn),
		callTimeout: DefaultCallTimeout,
	}, nil
}

// DialRuntime is Dial for callers that hold the runtime as a Runtime (and fakes in tests).
func DialRuntime(ctx context.Context, criSocket string) (Runtime, error) {
	c, err := Dial(ctx, criSocket)
	if err != nil {
		return nil, err // not c: a nil *Client in a Runtime would not compare equal to nil
	}
	return c, nil
}

func unreachable(socket string, err error) error {
	return fmt.Errorf("%w at %s: is containerd running? (%w)", ErrUnreachable, socket, err)
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// call bounds every request so a hung runtime cannot hang kubeboot; the caller's earlier deadline wins.
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
}

// wrap names the runtime and the call in err, and maps codes.Unimplemented to ErrUnimplemented.
func (c *Client) wrap(what string, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("%s at %s: %w: %w", what, c.socket, ErrUnimplemented, err)
	}
	return fmt.Errorf("%s at %s: %w", what, c.socket, err)
}

// Version asks the runtime for its name and versions.
func (c *Client) Version(ctx context.Context) (Version, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return Version{}, c.wrap("CRI Version", err)
	}
	return Version{RuntimeName: r.GetRuntimeName(), RuntimeVersion: r.GetRuntimeVersion(), RuntimeAPIVersion: r.GetRuntimeApiVersion()}, nil
}

// Status reads the RuntimeReady and NetworkReady conditions.
func (c *Client) Status(ctx context.Context) (Status, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return Status{}, c.wrap("CRI Status", err)
	}
	var s Status
	for _, cond := range r.GetStatus().GetConditions() {
		switch cond.GetType() {
		case runtimeapi.RuntimeReady:
			s.RuntimeReady = cond.GetStatus()
			s.Reason, s.Message = cond.GetReason(), cond.GetMessage()
		case runtimeapi.NetworkReady:
			s.NetworkReady = cond.GetStatus()
		}
	}
	return s, nil
}

// RuntimeConfig reads the runtime's cgroup driver (CRI RuntimeConfig, containerd >= 2.0, CRI-O >= 1.28).
func (c *Client) RuntimeConfig(ctx context.Context) (RuntimeConfig, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		return RuntimeConfig{}, c.wrap("CRI RuntimeConfig", err)
	}
	var rc RuntimeConfig
	switch r.GetLinux().GetCgroupDriver() {
	case runtimeapi.CgroupDriver_SYSTEMD:
		rc.CgroupDriver = "systemd"
	case runtimeapi.CgroupDriver_CGROUPFS:
		rc.CgroupDriver = "cgroupfs"
	}
	return rc, nil
}

// ImageStatus reports whether ref is present in the runtime's image store.
func (c *Client) ImageStatus(ctx context.Context, ref string) (Image, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return Image{}, c.wrap("CRI ImageStatus "+ref, err)
	}
	img := r.GetImage()
	if img == nil {
		return Image{}, nil
	}
	return Image{Present: true, ID: img.GetId(), RepoTags: img.GetRepoTags()}, nil
}

// PullImage pulls ref into the runtime's image store. A pull can take minutes, so only ctx bounds it, not the
// per-call timeout of the other requests.
func (c *Client) PullImage(ctx context.Context, ref string) error {
	if _, err := c.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		return c.wrap("CRI PullImage "+ref, err)
	}
	return nil
}

// ListPodSandboxes lists the sandboxes that carry all of labels.
func (c *Client) ListPodSandboxes(ctx context.Context, labels map[string]string) ([]PodSandbox, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	req := &runtimeapi.ListPodSandboxRequest{}
	if len(labels) > 0 {
		req.Filter = &runtimeapi.PodSandboxFilter{LabelSelector: labels}
	}
	r, err := c.runtime.ListPodSandbox(ctx, req)
	if err != nil {
		return nil, c.wrap("CRI ListPodSandbox", err)
	}
	out := make([]PodSandbox, 0, len(r.GetItems()))
	for _, s := range r.GetItems() {
		md := s.GetMetadata()
		out = append(out, PodSandbox{
			ID:        s.GetId(),
			Name:      md.GetName(),
			Namespace: md.GetNamespace(),
			UID:       md.GetUid(),
			Attempt:   md.GetAttempt(),
			Ready:     s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: nanos(s.GetCreatedAt()),
			Labels:    s.GetLabels(),
		})
	}
	return out, nil
}

// ListContainers lists the containers that carry all of labels.
func (c *Client) ListContainers(ctx context.Context, labels map[string]string) ([]Container, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	req := &runtimeapi.ListContainersRequest{}
	if len(labels) > 0 {
		req.Filter = &runtimeapi.ContainerFilter{LabelSelector: labels}
	}
	r, err := c.runtime.ListContainers(ctx, req)
	if err != nil {
		return nil, c.wrap("CRI ListContainers", err)
	}
	out := make([]Container, 0, len(r.GetContainers()))
	for _, ct := range r.GetContainers() {
		out = append(out, Container{
			ID:           ct.GetId(),
			PodSandboxID: ct.GetPodSandboxId(),
			Name:         ct.GetMetadata().GetName(),
			Attempt:      ct.GetMetadata().GetAttempt(),
			Image:        ct.GetImage().GetImage(),
			State:        containerState(ct.GetState()),
			CreatedAt:    nanos(ct.GetCreatedAt()),
			Labels:       ct.GetLabels(),
		})
	}
	return out, nil
}

// ContainerStatus returns one container's state, exit code, reason, message and log path.
func (c *Client) ContainerStatus(ctx context.Context, id string) (ContainerStatus, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return ContainerStatus{}, c.wrap("CRI ContainerStatus "+id, err)
	}
	s := r.GetStatus()
	if s == nil {
		return ContainerStatus{}, fmt.Errorf("CRI ContainerStatus %s at %s: the runtime returned no status", id, c.socket)
	}
	return ContainerStatus{
		ID:         s.GetId(),
		Name:       s.GetMetadata().GetName(),
		Attempt:    s.GetMetadata().GetAttempt(),
		State:      containerState(s.GetState()),
		ExitCode:   s.GetExitCode(),
		Reason:     s.GetReason(),
		Message:    s.GetMessage(),
		LogPath:    s.GetLogPath(),
		Image:      s.GetImage().GetImage(),
		CreatedAt:  nanos(s.GetCreatedAt()),
		StartedAt:  nanos(s.GetStartedAt()),
		FinishedAt: nanos(s.GetFinishedAt()),
		Labels:     s.GetLabels(),
	}, nil
}

// StopContainer stops a container: its process gets SIGTERM, and SIGKILL once grace has passed (whole seconds,
// as the CRI counts them). The call waits for the container to stop, so it is bounded by grace plus the call
// timeout rather than the call timeout alone.
func (c *Client) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, grace+c.callTimeout)
	defer cancel()
	req := &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: int64(grace / time.Second)}
	if _, err := c.runtime.StopContainer(ctx, req); err != nil {
		return c.wrap("CRI StopContainer "+id, err)
	}
	return nil
}

// RemoveContainer removes a stopped container.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	if _, err := c.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		return c.wrap("CRI RemoveContainer "+id, err)
	}
	return nil
}

// StopPodSandbox stops every container of the sandbox and tears down its network.
func (c *Client) StopPodSandbox(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	if _, err := c.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return c.wrap("CRI StopPodSandbox "+id, err)
	}
	return nil
}

// RemovePodSandbox removes a stopped sandbox and its containers.
func (c *Client) RemovePodSandbox(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	if _, err := c.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return c.wrap("CRI RemovePodSandbox "+id, err)
	}
	return nil
}

func containerState(s runtimeapi.ContainerState) ContainerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return ContainerCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return ContainerRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return ContainerExited
	}
	return ContainerUnknown
}

// nanos converts a CRI timestamp; 0 means "not set" and stays the zero time.
func nanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ContainerLister lists containers by label (*Client is one).
type ContainerLister interface {
	ListContainers(ctx context.Context, labels map[string]string) ([]Container, error)
}

// SandboxLister lists Pod sandboxes by label (*Client is one).
type SandboxLister interface {
	ListPodSandboxes(ctx context.Context, labels map[string]string) ([]PodSandbox, error)
}

// ContainerStopper stops one container, giving it grace to exit after SIGTERM (*Client is one). A static Pod's
// container stopped this way is started again by the kubelet from the same manifest, if the manifest is still there.
type ContainerStopper interface {
	StopContainer(ctx context.Context, id string, grace time.Duration) error
}

// ContainerRemover removes a stopped container (*Client is one).
type ContainerRemover interface {
	RemoveContainer(ctx context.Context, id string) error
}

// Recycle stops a static Pod's container, giving it grace, and then removes it when s can remove (a
// ContainerRemover), so that the kubelet starts a new one from the same manifest at its next sync of the Pod. The
// kubelet applies its crash-loop back-off to a container that it finds exited, and that back-off doubles with each
// exit (10 s, 20 s, ... up to 5 minutes, forgotten only after 10 minutes without one): a component stopped this way
// after a few restarts would otherwise wait minutes. It returns whether the container was removed too.
func Recycle(ctx context.Context, s ContainerStopper, id string, grace time.Duration) (removed bool, err error) {
	if err := s.StopContainer(ctx, id, grace); err != nil {
		return false, err
	}
	r, ok := s.(ContainerRemover)
	if !ok {
		return false, nil
	}
	if err := r.RemoveContainer(ctx, id); err != nil {
		return false, err
	}
	return true, nil
}

// APIServerStopGrace is what kubeboot gives a kube-apiserver whose Pod is being replaced (an upgrade, a restore) to
// exit before it is killed. Its in-flight requests end within it; its watches would hold it for the kubelet's
// whole grace period (30 s: kubeadm's manifests set none), and the kubelet starts the new Pod only once the old one
// has stopped.
const APIServerStopGrace = 5 * time.Second

// RemoveExitedInKubeSystem removes the exited containers named name in kube-system's Pods, so that the kubelet
// starts the static Pod's next container, from a manifest put back or an unchanged one, without its crash-loop
// back-off (see Recycle). A container that is gone already (the kubelet collects them too) counts as removed. It
// returns the IDs removed.
func RemoveExitedInKubeSystem(ctx context.Context, l ContainerLister, r ContainerRemover, name string) ([]string, error) {
	cs, err := l.ListContainers(ctx, map[string]string{LabelPodNamespace: "kube-system", LabelContainerName: name})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cs {
		if c.State != ContainerExited {
			continue
		}
		if err := r.RemoveContainer(ctx, c.ID); err != nil && status.Code(err) != codes.NotFound {
			return ids, err
		}
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// RemoveExitedInKubeSystemIfAble is RemoveExitedInKubeSystem when r can remove containers (a ContainerRemover,
// as *Client is); otherwise it removes nothing.
func RemoveExitedInKubeSystemIfAble(ctx context.Context, r ContainerLister, name string) ([]string, error) {
	rm, ok := r.(ContainerRemover)
	if !ok {
		return nil, nil
	}
	return RemoveExitedInKubeSystem(ctx, r, rm, name)
}

// RunningInKubeSystem returns the IDs of the running containers named name in kube-system's Pods: the kubelet labels
// each container with its Pod's namespace and its own name, which for a static Pod of the control plane is the
// component's (etcd, kube-apiserver, ...).
func RunningInKubeSystem(ctx context.Context, l ContainerLister, name string) ([]string, error) {
	cs, err := l.ListContainers(ctx, map[string]string{LabelPodNamespace: "kube-system", LabelContainerName: name})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cs {
		if c.State == ContainerRunning {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}
