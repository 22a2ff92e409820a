package cri

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// shortTempDir keeps unix socket paths under the 108-byte limit that t.TempDir's long names can exceed.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fakeServer is an in-process CRI runtime: the client's request building and response mapping are exercised
// over real gRPC, without a container runtime.
type fakeServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	mu         sync.Mutex
	images     map[string]*runtimeapi.Image
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	statuses   map[string]*runtimeapi.ContainerStatus
	conditions []*runtimeapi.RuntimeCondition
	stopped    []string
	removed    []string
	// stoppedContainers are the StopContainer calls, as "ID/timeout".
	stoppedContainers []string
	// removedContainers are the RemoveContainer calls; one of a container in gone fails with NotFound.
	removedContainers []string
	gone              map[string]bool
}

func (f *fakeServer) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fake", RuntimeVersion: "9.9.9", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeServer) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: f.conditions}}, nil
}

func (f *fakeServer) ImageStatus(_ context.Context, r *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	return &runtimeapi.ImageStatusResponse{Image: f.images[r.GetImage().GetImage()]}, nil
}

// matches applies a CRI label selector the way runtimes do: every selector label must be present and equal.
func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeServer) ListPodSandbox(_ context.Context, r *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	var out []*runtimeapi.PodSandbox
	for _, s := range f.sandboxes {
		if matches(r.GetFilter().GetLabelSelector(), s.GetLabels()) {
			out = append(out, s)
		}
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func (f *fakeServer) ListContainers(_ context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if matches(r.GetFilter().GetLabelSelector(), c.GetLabels()) {
			out = append(out, c)
		}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeServer) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	s, ok := f.statuses[r.GetContainerId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "container %q not found", r.GetContainerId())
	}
	return &runtimeapi.ContainerStatusResponse{Status: s}, nil
}

func (f *fakeServer) StopPodSandbox(_ context.Context, r *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, r.GetPodSandboxId())
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeServer) StopContainer(_ context.Context, r *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stoppedContainers = append(f.stoppedContainers, fmt.Sprintf("%s/%d", r.GetContainerId(), r.GetTimeout()))
	return &runtimeapi.StopContainerResponse{}, nil
}

func (f *fakeServer) RemoveContainer(_ context.Context, r *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone[r.GetContainerId()] {
		return nil, status.Errorf(codes.NotFound, "container %q not found", r.GetContainerId())
	}
	f.removedContainers = append(f.removedContainers, r.GetContainerId())
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (f *fakeServer) RemovePodSandbox(_ context.Context, r *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, r.GetPodSandboxId())
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// serve starts f on a fresh unix socket and returns the socket in criSocket form.
func serve(t *testing.T, f *fakeServer) string {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "cri.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	runtimeapi.RegisterImageServiceServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}

func dial(t *testing.T, socket string) *Client {
	t.Helper()
	c, err := Dial(t.Context(), socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSocketPath(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "unix:///var/run/containerd/containerd.sock", want: "/var/run/containerd/containerd.sock"},
		{in: "/run/crio/crio.sock", want: "/run/crio/crio.sock"},
		{in: "tcp://127.0.0.1:1234", wantErr: `unsupported CRI socket "tcp://127.0.0.1:1234": only unix sockets are supported, e.g. unix:///var/run/containerd/containerd.sock`},
		{in: "unix://run/x.sock", wantErr: `CRI socket "unix://run/x.sock" is not an absolute path: use e.g. unix:///var/run/containerd/containerd.sock`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SocketPath(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("SocketPath(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SocketPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDialUnreachable(t *testing.T) {
	dir := shortTempDir(t)
	missing := filepath.Join(dir, "missing.sock")
	// A stale socket file: the runtime died and left it behind, so connecting is refused.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	tests := []struct {
		name, socket, want string
	}{
		{
			name:   "missing socket",
			socket: "unix://" + missing,
			want:   "container runtime not reachable at unix://" + missing + ": is containerd running? (dial unix " + missing + ": connect: no such file or directory)",
		},
		{
			name:   "stale socket",
			socket: "unix://" + stale,
			want:   "container runtime not reachable at unix://" + stale + ": is containerd running? (dial unix " + stale + ": connect: connection refused)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Dial(t.Context(), tt.socket)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Dial error = %v\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("Dial error does not wrap ErrUnreachable")
			}
			if d := time.Since(start); d > DefaultDialTimeout {
				t.Errorf("Dial took %v, want < %v", d, DefaultDialTimeout)
			}
		})
	}
}

func TestClientAgainstFakeRuntime(t *testing.T) {
	apiLabels := map[string]string{LabelPodNamespace: "kube-system", LabelPodName: "kube-apiserver-n1", LabelPodUID: "u1"}
	etcdLabels := map[string]string{LabelPodNamespace: "kube-system", LabelPodName: "etcd-n1", LabelPodUID: "u2"}
	apiCtr := map[string]string{LabelPodNamespace: "kube-system", LabelPodName: "kube-apiserver-n1", LabelContainerName: "kube-apiserver"}
	etcdCtr := map[string]string{LabelPodNamespace: "kube-system", LabelPodName: "etcd-n1", LabelContainerName: "etcd"}
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	finished := created.Add(3 * time.Second)

	f := &fakeServer{
		images: map[string]*runtimeapi.Image{
			"registry.k8s.io/pause:3.10.1": {Id: "sha256:abc", RepoTags: []string{"registry.k8s.io/pause:3.10.1"}},
		},
		conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: false, Reason: "Booting", Message: "still starting"},
			{Type: runtimeapi.NetworkReady, Status: true},
		},
		sandboxes: []*runtimeapi.PodSandbox{
			{Id: "s1", Metadata: &runtimeapi.PodSandboxMetadata{Name: "kube-apiserver-n1", Namespace: "kube-system", Uid: "u1", Attempt: 2},
				State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: created.UnixNano(), Labels: apiLabels},
			{Id: "s2", Metadata: &runtimeapi.PodSandboxMetadata{Name: "etcd-n1", Namespace: "kube-system", Uid: "u2"},
				State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY, Labels: etcdLabels},
		},
		containers: []*runtimeapi.Container{
			{Id: "c1", PodSandboxId: "s1", Metadata: &runtimeapi.ContainerMetadata{Name: "kube-apiserver", Attempt: 3},
				Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/kube-apiserver:v1.34.4"}, State: runtimeapi.ContainerState_CONTAINER_EXITED,
				CreatedAt: created.UnixNano(), Labels: apiCtr},
			{Id: "c2", PodSandboxId: "s2", Metadata: &runtimeapi.ContainerMetadata{Name: "etcd"},
				State: runtimeapi.ContainerState_CONTAINER_RUNNING, Labels: etcdCtr},
		},
		statuses: map[string]*runtimeapi.ContainerStatus{
			"c1": {Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "kube-apiserver", Attempt: 3},
				State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: 1, Reason: "Error", Message: "bind: address already in use",
				LogPath: "/var/log/pods/kube-system_kube-apiserver-n1_u1/kube-apiserver/3.log", Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/kube-apiserver:v1.34.4"},
				CreatedAt: created.UnixNano(), StartedAt: created.UnixNano(), FinishedAt: finished.UnixNano(), Labels: apiCtr},
		},
	}
	c := dial(t, serve(t, f))
	ctx := t.Context()

	t.Run("Version", func(t *testing.T) {
		got, err := c.Version(ctx)
		want := Version{RuntimeName: "fake", RuntimeVersion: "9.9.9", RuntimeAPIVersion: "v1"}
		if err != nil || got != want {
			t.Fatalf("Version = %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("Status", func(t *testing.T) {
		got, err := c.Status(ctx)
		want := Status{RuntimeReady: false, NetworkReady: true, Reason: "Booting", Message: "still starting"}
		if err != nil || got != want {
			t.Fatalf("Status = %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("RuntimeConfig unimplemented", func(t *testing.T) {
		_, err := c.RuntimeConfig(ctx)
		if !errors.Is(err, ErrUnimplemented) {
			t.Fatalf("RuntimeConfig error = %v, want ErrUnimplemented", err)
		}
		want := "CRI RuntimeConfig at " + c.socket + ": not implemented by the container runtime: rpc error: code = Unimplemented desc = method RuntimeConfig not implemented"
		if err.Error() != want {
			t.Fatalf("RuntimeConfig error = %q\nwant %q", err, want)
		}
	})
	t.Run("ImageStatus", func(t *testing.T) {
		got, err := c.ImageStatus(ctx, "registry.k8s.io/pause:3.10.1")
		want := Image{Present: true, ID: "sha256:abc", RepoTags: []string{"registry.k8s.io/pause:3.10.1"}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ImageStatus(present) = %+v, %v; want %+v", got, err, want)
		}
		got, err = c.ImageStatus(ctx, "registry.k8s.io/etcd:3.6.5-0")
		if err != nil || got.Present {
			t.Fatalf("ImageStatus(missing) = %+v, %v; want not present, no error", got, err)
		}
	})
	t.Run("ListPodSandboxes by labels", func(t *testing.T) {
		got, err := c.ListPodSandboxes(ctx, map[string]string{LabelPodNamespace: "kube-system", LabelPodName: "kube-apiserver-n1"})
		want := []PodSandbox{{ID: "s1", Name: "kube-apiserver-n1", Namespace: "kube-system", UID: "u1", Attempt: 2, Ready: true,
			CreatedAt: time.Unix(0, created.UnixNano()), Labels: apiLabels}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ListPodSandboxes = %+v, %v\nwant %+v", got, err, want)
		}
		all, err := c.ListPodSandboxes(ctx, nil)
		if err != nil || len(all) != 2 || all[1].Ready {
			t.Fatalf("ListPodSandboxes(nil) = %+v, %v; want both sandboxes, s2 not ready", all, err)
		}
	})
	t.Run("ListContainers by labels", func(t *testing.T) {
		got, err := c.ListContainers(ctx, map[string]string{LabelContainerName: "kube-apiserver"})
		want := []Container{{ID: "c1", PodSandboxID: "s1", Name: "kube-apiserver", Attempt: 3, Image: "registry.k8s.io/kube-apiserver:v1.34.4",
			State: ContainerExited, CreatedAt: time.Unix(0, created.UnixNano()), Labels: apiCtr}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ListContainers = %+v, %v\nwant %+v", got, err, want)
		}
		got, err = c.ListContainers(ctx, map[string]string{LabelContainerName: "kube-scheduler"})
		if err != nil || len(got) != 0 {
			t.Fatalf("ListContainers(no match) = %+v, %v; want none", got, err)
		}
	})
	t.Run("ContainerStatus", func(t *testing.T) {
		got, err := c.ContainerStatus(ctx, "c1")
		want := ContainerStatus{ID: "c1", Name: "kube-apiserver", Attempt: 3, State: ContainerExited, ExitCode: 1, Reason: "Error",
			Message: "bind: address already in use", LogPath: "/var/log/pods/kube-system_kube-apiserver-n1_u1/kube-apiserver/3.log",
			Image: "registry.k8s.io/kube-apiserver:v1.34.4", CreatedAt: time.Unix(0, created.UnixNano()),
			StartedAt: time.Unix(0, created.UnixNano()), FinishedAt: time.Unix(0, finished.UnixNano()), Labels: maps.Clone(apiCtr)}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ContainerStatus = %+v, %v\nwant %+v", got, err, want)
		}
		_, err = c.ContainerStatus(ctx, "nope")
		wantErr := "CRI ContainerStatus nope at " + c.socket + `: rpc error: code = NotFound desc = container "nope" not found`
		if err == nil || err.Error() != wantErr || status.Code(errors.Unwrap(err)) != codes.NotFound {
			t.Fatalf("ContainerStatus(nope) error = %v\nwant %s (code NotFound)", err, wantErr)
		}
	})
	t.Run("StopContainer", func(t *testing.T) {
		if err := c.StopContainer(ctx, "c2", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !reflect.DeepEqual(f.stoppedContainers, []string{"c2/30"}) {
			t.Fatalf("runtime saw StopContainer %v; want [c2/30]", f.stoppedContainers)
		}
	})
	t.Run("Recycle: stop, then remove", func(t *testing.T) {
		removed, err := Recycle(ctx, c, "c3", 5*time.Second)
		if err != nil || !removed {
			t.Fatalf("Recycle = %v, %v; want true, nil", removed, err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !reflect.DeepEqual(f.stoppedContainers, []string{"c2/30", "c3/5"}) || !reflect.DeepEqual(f.removedContainers, []string{"c3"}) {
			t.Fatalf("runtime saw StopContainer %v, RemoveContainer %v; want [c2/30 c3/5], [c3]", f.stoppedContainers, f.removedContainers)
		}
	})
	t.Run("RemoveExitedInKubeSystem: the exited ones only; one gone already counts", func(t *testing.T) {
		ids, err := RemoveExitedInKubeSystem(ctx, c, c, "etcd")
		if err != nil || len(ids) != 0 {
			t.Fatalf("RemoveExitedInKubeSystem(etcd), whose container runs = %v, %v; want none", ids, err)
		}
		ids, err = RemoveExitedInKubeSystem(ctx, c, c, "kube-apiserver")
		if err != nil || !reflect.DeepEqual(ids, []string{"c1"}) {
			t.Fatalf("RemoveExitedInKubeSystem(kube-apiserver) = %v, %v; want [c1]", ids, err)
		}
		f.mu.Lock()
		f.gone = map[string]bool{"c1": true}
		f.mu.Unlock()
		ids, err = RemoveExitedInKubeSystem(ctx, c, c, "kube-apiserver")
		if err != nil || !reflect.DeepEqual(ids, []string{"c1"}) {
			t.Fatalf("RemoveExitedInKubeSystem(kube-apiserver) of a container gone already = %v, %v; want [c1], no error", ids, err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !reflect.DeepEqual(f.removedContainers, []string{"c3", "c1"}) {
			t.Fatalf("runtime removed %v; want [c3 c1]", f.removedContainers)
		}
	})
	t.Run("Stop and remove sandbox", func(t *testing.T) {
		if err := c.StopPodSandbox(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemovePodSandbox(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !reflect.DeepEqual(f.stopped, []string{"s1"}) || !reflect.DeepEqual(f.removed, []string{"s1"}) {
			t.Fatalf("runtime saw stop %v, remove %v; want [s1] each", f.stopped, f.removed)
		}
	})
}

// A runtime that stops answering must not hang the caller past the call timeout.
func TestCallHonoursTimeout(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "block.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	release := make(chan struct{})
	runtimeapi.RegisterRuntimeServiceServer(srv, blockingServer{release: release})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	t.Cleanup(func() { close(release) }) // runs first: the handler returns, then the server stops

	c := dial(t, "unix://"+sock)
	c.callTimeout = 100 * time.Millisecond
	start := time.Now()
	_, err = c.Version(t.Context())
	if status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded {
		t.Fatalf("Version error = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Version returned after %v, want about 100ms", d)
	}
}

// blockingServer answers Version only when the test ends (with a code other than DeadlineExceeded), so only the
// client's own deadline can produce DeadlineExceeded. It ignores its own context on purpose: the deadline the
// client propagates can fire on the server side first, and its answer would race the client's.
type blockingServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	release <-chan struct{}
}

func (b blockingServer) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	<-b.release
	return nil, status.Error(codes.Aborted, "released")
}

// listOnly lists one exited container and cannot remove any.
type listOnly struct{}

func (listOnly) ListContainers(context.Context, map[string]string) ([]Container, error) {
	return []Container{{ID: "etcd-1", Name: "etcd", State: ContainerExited}}, nil
}

// A runtime that cannot remove leaves its exited containers to the kubelet: nothing removed, no error.
func TestRemoveExitedInKubeSystemIfAbleWithoutARemover(t *testing.T) {
	if ids, err := RemoveExitedInKubeSystemIfAble(t.Context(), listOnly{}, "etcd"); ids != nil || err != nil {
		t.Errorf("RemoveExitedInKubeSystemIfAble = %v, %v; want nothing removed and no error", ids, err)
	}
}
