package cri

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// containerdConfig is a throwaway containerd: every directory and socket under dir, CRI set up as in the lab
// (restrict_oom_score_adj because this machine lacks CAP_SYS_RESOURCE; a sandbox image name, never pulled: the test runs no Pod).
const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
oom_score = 0

[grpc]
  address = "%[1]s/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "registry.k8s.io/pause:3.10.1"
  disable_tcp_service = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%[1]s/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
`

// startContainerd runs a private containerd for the test and returns its socket in criSocket form. The process
// is stopped by PID when the test ends. The test is skipped when containerd is not installed.
func startContainerd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Skip("containerd is not installed (apt-get install containerd runc); skipping the real-runtime test")
	}
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root; skipping the real-runtime test")
	}
	dir := shortTempDir(t)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, containerdConfig, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies without running Cleanup (timeout, kill), the kernel still stops containerd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		pid := cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("containerd log:\n%s", b)
			}
		}
	})

	sock := filepath.Join(dir, "containerd.sock")
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logFile.Name())
			t.Fatalf("containerd exited early: %v\n%s", err, b)
		default:
		}
		if c, err := Dial(t.Context(), "unix://"+sock); err == nil {
			c.Close()
			return "unix://" + sock
		} else if !errors.Is(err, ErrUnreachable) || time.Now().After(deadline) {
			t.Fatalf("containerd did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRealContainerd(t *testing.T) {
	socket := startContainerd(t)
	c := dial(t, socket)
	ctx := t.Context()

	t.Run("Version", func(t *testing.T) {
		v, err := c.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.RuntimeName != "containerd" || v.RuntimeAPIVersion != "v1" || v.RuntimeVersion == "" {
			t.Fatalf("Version = %+v, want containerd speaking CRI v1", v)
		}
		t.Logf("runtime: %s %s (CRI %s)", v.RuntimeName, v.RuntimeVersion, v.RuntimeAPIVersion)
	})
	t.Run("Status", func(t *testing.T) {
		// The CRI plugin initialises asynchronously; RuntimeReady follows within a moment of the socket.
		var s Status
		var err error
		for range 100 {
			if s, err = c.Status(ctx); err == nil && s.RuntimeReady {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || !s.RuntimeReady {
			t.Fatalf("Status = %+v, %v; want RuntimeReady", s, err)
		}
		// No CNI config in our conf_dir: containerd must say the network is not ready.
		if s.NetworkReady {
			t.Errorf("NetworkReady = true with an empty CNI conf_dir, want false")
		}
	})
	t.Run("ImageStatus of a missing image", func(t *testing.T) {
		img, err := c.ImageStatus(ctx, "registry.k8s.io/kube-apiserver:v0.0.0-kubeboot-test")
		if err != nil {
			t.Fatal(err)
		}
		if img.Present {
			t.Fatalf("ImageStatus = %+v, want not present", img)
		}
	})
	t.Run("ListPodSandboxes empty", func(t *testing.T) {
		s, err := c.ListPodSandboxes(ctx, map[string]string{LabelPodNamespace: "kube-system"})
		if err != nil || len(s) != 0 {
			t.Fatalf("ListPodSandboxes = %v, %v; want none", s, err)
		}
	})
	t.Run("RuntimeConfig", func(t *testing.T) {
		// containerd 1.6/1.7 do not implement it; 2.x do. Either answer is valid, an other error is not.
		rc, err := c.RuntimeConfig(ctx)
		if err != nil && !errors.Is(err, ErrUnimplemented) {
			t.Fatalf("RuntimeConfig error = %v, want nil or ErrUnimplemented", err)
		}
		t.Logf("RuntimeConfig = %+v, err = %v", rc, err)
	})
	t.Run("ContainerStatus of unknown id", func(t *testing.T) {
		_, err := c.ContainerStatus(ctx, "0123456789ab")
		if err == nil || !strings.Contains(err.Error(), "CRI ContainerStatus 0123456789ab at "+socket+": rpc error: code = NotFound") {
			t.Fatalf("ContainerStatus error = %v, want NotFound naming the id and socket", err)
		}
	})
}
