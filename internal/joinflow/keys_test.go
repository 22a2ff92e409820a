package joinflow

import (
	"path/filepath"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/dryrun"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// runWatched runs the join with its output going to a keyleak.Watch over dirs: at every line a phase prints, the
// Watch looks for key material in the output and in dirs (outside skip).
func runWatched(t *testing.T, h *harness, dirs, skip []string) *keyleak.Watch {
	t.Helper()
	w := &keyleak.Watch{Dirs: dirs, Skip: skip}
	h.data.Out = w
	r := workflow.Runner[*Data]{Phases: Phases(), Out: w}
	if err := r.Run(t.Context(), h.data, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, w.String())
	}
	return w
}

// A control-plane join decrypts the shared CA keys and issues itself an etcd client certificate before it writes
// anything; neither may pass through a temporary directory.
func TestControlPlaneJoinKeepsKeysOutOfTmp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	w := runWatched(t, h.harness, []string{tmp}, nil)
	if found := w.Check(); len(found) > 0 {
		t.Errorf("key material outside the node's certificates directory: %q\n%s", found, w.String())
	}
	// The keys did arrive where they belong.
	if !h.data.FS.Exists("/etc/kubernetes/pki/ca.key") || !h.data.FS.Exists("/etc/kubernetes/pki/etcd/healthcheck-client.key") {
		t.Error("the join did not write its keys into the certificates directory")
	}
}

// A dry run of a control-plane join downloads, decrypts and issues keys as a real one does, into memory: nothing
// is written to the node, to a temporary directory or to the output.
func TestControlPlaneDryRunKeepsKeysInMemory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	h.data.DryRun = true
	h.data.FS = nodefs.Overlay(h.data.FS)
	w := runWatched(t, h.harness, []string{tmp, h.root}, nil)
	// What `kubeboot join --dry-run` prints after the phases.
	if err := dryrun.Report(w, h.data.FS); err != nil {
		t.Fatal(err)
	}
	if found := w.Check(); len(found) > 0 {
		t.Errorf("key material outside memory: %q\n%s", found, w.String())
	}
	for _, p := range []string{"/etc/kubernetes/pki/ca.key", config.AdminKubeconfigFile, "/etc/kubernetes/manifests/etcd.yaml"} {
		if !h.data.FS.Exists(p) {
			t.Errorf("the dry run did not render %s", p)
		}
		if (nodefs.FS{Root: h.root}).Exists(p) {
			t.Errorf("the dry run wrote %s", filepath.Join(h.root, p))
		}
	}
}

// A worker's dry run puts the token, a credential, in no file (kubeboot requests the kubelet's certificate itself,
// so there is no bootstrap-kubelet.conf), leaves no key material outside memory, and does not print the token.
func TestWorkerDryRunKeepsTheTokenInMemory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	h := newHarness(t, nil, clusterObjects(t, kubeletHealthz(t), nil)...)
	h.data.DryRun = true
	h.data.FS = nodefs.Overlay(h.data.FS)
	w := runWatched(t, h, []string{tmp, h.root}, nil)
	if err := dryrun.Report(w, h.data.FS); err != nil {
		t.Fatal(err)
	}
	if found := w.Check(); len(found) > 0 {
		t.Errorf("key material outside memory: %q\n%s", found, w.String())
	}
	secret := testToken[strings.Index(testToken, ".")+1:]
	if strings.Contains(w.String(), secret) {
		t.Errorf("the dry run printed the token's secret:\n%s", w.String())
	}
	if strings.Contains(w.String(), config.BootstrapKubeletConf) || h.data.FS.Exists(config.BootstrapKubeletConf) {
		t.Errorf("the dry run rendered %s:\n%s", config.BootstrapKubeletConf, w.String())
	}
	if want := "  dry run: would request the kubelet's client certificate for worker-1"; !strings.Contains(w.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, w.String())
	}
}
