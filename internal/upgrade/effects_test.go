package upgrade

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/renewal"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// TestCertRenewer renews, with package renewal, exactly the certificates kubeadm's upgrade renews with each
// component, and admin.conf and super-admin.conf at the end.
func TestCertRenewer(t *testing.T) {
	cfg := testInit(t, "v1.36.3")
	cfg.Cluster.EncryptionAlgorithm = config.EncryptionAlgorithmType("ECDSA-P256") // fast keys
	fsys := nodefs.FS{Root: t.TempDir()}
	src := pki.SystemSource()
	for _, p := range pki.Phases() {
		if _, err := pki.Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), p.Name, src); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kubeconfig.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), src); err != nil {
		t.Fatal(err)
	}
	set := renewal.NewSet(fsys, cfg.Cluster.CertificatesDir, config.KubernetesDir, false)
	serials := func() map[string]string {
		out := map[string]string{}
		for _, c := range set.Certs {
			cert, err := set.Read(c)
			if err != nil {
				t.Fatal(err)
			}
			out[c.Name] = cert.SerialNumber.String()
		}
		return out
	}
	var out bytes.Buffer
	r := NewCertRenewer(set, &cfg.Cluster, src, &out)
	for _, tt := range []struct {
		renew func() error
		want  []string
	}{
		{func() error { return r.RenewFor(staticpod.EtcdName) }, []string{"etcd-healthcheck-client", "etcd-peer", "etcd-server"}},
		{func() error { return r.RenewFor(staticpod.APIServerName) }, []string{"apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "front-proxy-client"}},
		{func() error { return r.RenewFor(staticpod.ControllerManagerName) }, []string{"controller-manager.conf"}},
		{func() error { return r.RenewFor(staticpod.SchedulerName) }, []string{"scheduler.conf"}},
		{r.RenewAdmin, []string{"admin.conf", "super-admin.conf"}},
	} {
		before := serials()
		if err := tt.renew(); err != nil {
			t.Fatal(err)
		}
		var changed []string
		for name, s := range serials() {
			if before[name] != s {
				changed = append(changed, name)
			}
		}
		if d := cmp.Diff(tt.want, sorted(changed)); d != "" {
			t.Errorf("renewed (-want +got):\n%s", d)
		}
	}
	if !strings.Contains(out.String(), "[upgrade/staticpods] Renewing apiserver-etcd-client certificate\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

type restarter struct{ restarted []string }

func (r *restarter) Restart(_ context.Context, cs []string) error {
	r.restarted = append(r.restarted, cs...)
	return nil
}

// TestUpgradeRenewsUnchangedEtcd: a patch upgrade leaves etcd's manifest as it is, but its certificates are renewed
// with the API server's and etcd restarts in place to read them (kubeadm's exception for etcd).
func TestUpgradeRenewsUnchangedEtcd(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	rendered, err := Render(fsys, targetOf(testInit(t, "v1.37.0")), Components)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rendered {
		if err := fsys.WriteFile(staticpod.Path(r.Component), r.YAML, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := manifestsOf(t, fsys)
	rn, rs := &renewer{}, &restarter{}
	var out bytes.Buffer
	e := engine(fsys, &fakeKubelet{fs: fsys}, rn, &out)
	e.Restart = rs
	res, err := e.Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "admin"}, rn.calls); d != "" {
		t.Errorf("renewals (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"etcd"}, rs.restarted); d != "" {
		t.Errorf("restarted (-want +got):\n%s", d)
	}
	if got := manifestsOf(t, fsys)[staticpod.EtcdName]; !bytes.Equal(got, old[staticpod.EtcdName]) {
		t.Error("etcd's manifest changed")
	}
	if fsys.Exists("/etc/kubernetes/tmp/kubeadm-backup-etcd-2026-12-03-20-01-02") {
		t.Error("etcd's data was backed up although its manifest stays")
	}
	if len(res.Upgraded) != 4 {
		t.Errorf("Upgraded %q", res.Upgraded)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
