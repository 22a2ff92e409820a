package joinflow

import (
	"path/filepath"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// runWatched runs the join with its output going to a keyleak.Watch over dirs: at every line a phase prints, the
// Watch looks for key material in the output and in dirs (outside skip).
func runWatched(t *testing.T, h *cpHarness, dirs, skip []string) *keyleak.Watch {
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
	w := runWatched(t, h, []string{tmp}, nil)
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
	w := runWatched(t, h, []string{tmp, h.root}, nil)
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
