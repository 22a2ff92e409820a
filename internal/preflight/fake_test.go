package preflight

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// fakeMachine is a healthy control-plane machine; tests break one thing at a time.
type fakeMachine struct {
	// mu guards what the Env's functions record: Run calls them from concurrent checks.
	mu        sync.Mutex
	root      string
	uid       int
	cpus      int
	memMB     uint64
	memErr    error
	busy      map[string]error // listen address -> error
	listened  []string
	missing   map[string]bool // executables not on PATH
	outputs   map[string]fakeOutput
	ran       []string
	hosts     map[string][]string
	env       map[string]string
	runtime   *fakeRuntime
	dialErr   error
	dialCount int
}

type fakeOutput struct {
	out string
	err error
}

func newFakeMachine(t *testing.T) *fakeMachine {
	t.Helper()
	m := &fakeMachine{
		root:    t.TempDir(),
		uid:     0,
		cpus:    2,
		memMB:   24000,
		busy:    map[string]error{},
		missing: map[string]bool{},
		outputs: map[string]fakeOutput{
			"kubelet --version": {out: "Kubernetes v1.37.2\n"},
		},
		hosts:   map[string][]string{"node1": {"10.0.0.10"}},
		env:     map[string]string{},
		runtime: newFakeRuntime(),
	}
	m.write(t, "/proc/sys/net/ipv4/ip_forward", "1\n")
	m.write(t, "/proc/sys/net/ipv6/conf/default/forwarding", "1\n")
	m.write(t, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
	m.write(t, "/proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
	return m
}

func (m *fakeMachine) write(t *testing.T, path, content string) {
	t.Helper()
	if err := m.fs().WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (m *fakeMachine) remove(t *testing.T, path string) {
	t.Helper()
	if err := m.fs().Remove(path); err != nil {
		t.Fatal(err)
	}
}

func (m *fakeMachine) mkdir(t *testing.T, path string) {
	t.Helper()
	if err := m.fs().MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func (m *fakeMachine) fs() nodefs.FS { return nodefs.FS{Root: m.root} }

func (m *fakeMachine) Env() Env {
	return Env{
		FS: m.fs(),
		Listen: func(network, address string) (net.Listener, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.listened = append(m.listened, address)
			if err, ok := m.busy[address]; ok {
				return nil, &net.OpError{Op: "listen", Net: network, Err: err}
			}
			return fakeListener{}, nil
		},
		LookPath: func(file string) (string, error) {
			if m.missing[file] {
				return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
			}
			return "/usr/bin/" + file, nil
		},
		Output: func(_ context.Context, name string, args ...string) ([]byte, error) {
			cmd := strings.Join(append([]string{name}, args...), " ")
			m.mu.Lock()
			defer m.mu.Unlock()
			m.ran = append(m.ran, cmd)
			o, ok := m.outputs[cmd]
			if !ok {
				return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
			}
			return []byte(o.out), o.err
		},
		DialRuntime: func(_ context.Context, socket string) (cri.Runtime, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.dialCount++
			if m.dialErr != nil {
				return nil, m.dialErr
			}
			m.runtime.socket = socket
			return m.runtime, nil
		},
		Geteuid:  func() int { return m.uid },
		NumCPU:   func() int { return m.cpus },
		MemoryMB: func() (uint64, error) { return m.memMB, m.memErr },
		LookupHost: func(_ context.Context, host string) ([]string, error) {
			if addrs, ok := m.hosts[host]; ok {
				return addrs, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
		Getenv: func(k string) string { return m.env[k] },
	}
}

type fakeListener struct{}

func (fakeListener) Accept() (net.Conn, error) { return nil, errors.New("fake") }
func (fakeListener) Close() error              { return nil }
func (fakeListener) Addr() net.Addr            { return &net.TCPAddr{} }

// fakeRuntime is a healthy containerd 1.6 (no RuntimeConfig) holding the images in present.
type fakeRuntime struct {
	mu         sync.Mutex // guards queried and closed, which concurrent checks record
	socket     string
	status     cri.Status
	statusErr  error
	version    cri.Version
	versionErr error
	configErr  error
	present    map[string]bool
	imageErr   map[string]error
	queried    []string
	closed     int
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		status:   cri.Status{RuntimeReady: true, NetworkReady: false},
		version:  cri.Version{RuntimeName: "containerd", RuntimeVersion: "v2.4.2", RuntimeAPIVersion: "v1"},
		present:  map[string]bool{},
		imageErr: map[string]error{},
	}
}

func (r *fakeRuntime) Version(context.Context) (cri.Version, error) { return r.version, r.versionErr }
func (r *fakeRuntime) Status(context.Context) (cri.Status, error)   { return r.status, r.statusErr }
func (r *fakeRuntime) RuntimeConfig(context.Context) (cri.RuntimeConfig, error) {
	if r.configErr != nil {
		return cri.RuntimeConfig{}, r.configErr
	}
	return cri.RuntimeConfig{CgroupDriver: "cgroupfs"}, nil
}
func (r *fakeRuntime) ImageStatus(_ context.Context, ref string) (cri.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queried = append(r.queried, ref)
	if err := r.imageErr[ref]; err != nil {
		return cri.Image{}, err
	}
	return cri.Image{Present: r.present[ref]}, nil
}
func (r *fakeRuntime) ListPodSandboxes(context.Context, map[string]string) ([]cri.PodSandbox, error) {
	return nil, errors.New("not used by preflight")
}
func (r *fakeRuntime) ListContainers(context.Context, map[string]string) ([]cri.Container, error) {
	return nil, errors.New("not used by preflight")
}
func (r *fakeRuntime) ContainerStatus(context.Context, string) (cri.ContainerStatus, error) {
	return cri.ContainerStatus{}, errors.New("not used by preflight")
}
func (r *fakeRuntime) StopPodSandbox(context.Context, string) error {
	return errors.New("not used by preflight")
}
func (r *fakeRuntime) RemovePodSandbox(context.Context, string) error {
	return errors.New("not used by preflight")
}
func (r *fakeRuntime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed++
	return nil
}

// strs renders errors for exact comparison.
func strs(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

var (
	errInUse       = os.NewSyscallError("bind", syscall.EADDRINUSE)
	errCannotAssig = os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)
)
