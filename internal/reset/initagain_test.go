package reset

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/workflow"
)

func initConfig(t *testing.T) *config.Init {
	t.Helper()
	env := config.Environment{
		Hostname:              func() (string, error) { return "cp-1", nil },
		AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.1.2.3"), nil },
		SystemdResolvedActive: func() bool { return false },
		Random:                strings.NewReader(strings.Repeat("k", 256)),
	}
	cfg, _, err := config.ResolveInit([]byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp-1}\n"), config.InitFlags{}, env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// renderInit runs init's node-local phases (certificates, kubeconfigs, manifests, kubelet files) into fsys and
// returns their output.
func renderInit(t *testing.T, cfg *config.Init, fsys nodefs.FS) string {
	t.Helper()
	keep := []string{"certs", "kubeconfig", "etcd", "control-plane", "kubelet-start"}
	var skip []string
	for _, p := range initflow.Phases() {
		if !slices.Contains(keep, p.Name) {
			skip = append(skip, p.Name)
		}
	}
	var out bytes.Buffer
	w := workflow.Locked(&out) // the file phases run concurrently
	d := &initflow.Data{Env: nodeenv.Env{FS: fsys, Out: w, Source: pki.SystemSource(), InitSystem: &fakeInitSystem{name: "fake"}}, Cfg: cfg, Hostname: "cp-1"}
	if err := (&workflow.Runner[*initflow.Data]{Phases: initflow.Phases(), Out: w}).Run(t.Context(), d, workflow.Options{Skip: skip}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return out.String()
}

// failingFileChecks runs init's preflight checks that look at the node's files, the ones a leftover from an
// earlier cluster fails, and names those that fail.
func failingFileChecks(cfg *config.Init, fsys nodefs.FS) []string {
	var failed []string
	for _, c := range preflight.InitChecks(*cfg, preflight.Env{FS: fsys}) {
		if !strings.HasPrefix(c.Name(), "DirAvailable") && !strings.HasPrefix(c.Name(), "FileAvailable") {
			continue
		}
		if _, errs := c.Check(context.Background()); len(errs) > 0 {
			failed = append(failed, c.Name())
		}
	}
	return failed
}

// TestInitAgainAfterReset renders a control-plane node with init's own code, resets it, and renders it again:
// after reset init's file preflight checks pass, and the second init generates every certificate and
// kubeconfig anew, reusing nothing of the first cluster.
func TestInitAgainAfterReset(t *testing.T) {
	e := newEnv(t, nil)
	cfg := initConfig(t)
	renderInit(t, cfg, e.fsys)
	// What a running node adds: etcd data and the kubelet's own state.
	writeTree(t, e.fsys, map[string]string{
		"/var/lib/etcd/member/snap/db":                    "db",
		"/var/lib/kubelet/pki/kubelet-client-current.pem": "pem",
	})
	wantFailing := []string{
		"DirAvailable--etc-kubernetes-manifests",
		"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
		"FileAvailable--etc-kubernetes-manifests-etcd.yaml",
		"DirAvailable--var-lib-etcd",
	}
	if got := failingFileChecks(cfg, e.fsys); !slices.Equal(got, wantFailing) {
		t.Fatalf("after init, failing file checks are %q, want %q (else this test proves nothing)", got, wantFailing)
	}
	oldCA, err := e.fsys.ReadFile("/etc/kubernetes/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}

	if _, err := e.run(t, config.ResetConfiguration{Force: true}); err != nil {
		t.Fatalf("%v\n%s", err, e.out.String())
	}
	if got := failingFileChecks(cfg, e.fsys); len(got) > 0 {
		t.Errorf("after reset, init's checks %q fail", got)
	}
	second := renderInit(t, cfg, e.fsys)
	if strings.Contains(second, "reused") || !strings.Contains(second, "generated") {
		t.Errorf("the second init reused files of the first:\n%s", second)
	}
	newCA, _ := e.fsys.ReadFile("/etc/kubernetes/pki/ca.crt")
	if bytes.Equal(oldCA, newCA) {
		t.Error("the second init kept the first cluster's CA")
	}
}
