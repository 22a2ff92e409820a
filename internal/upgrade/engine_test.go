package upgrade

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// testInit is a resolved configuration of a control-plane node cp-1 at version.
func testInit(t *testing.T, version string) *config.Init {
	t.Helper()
	env := config.Environment{
		Hostname:              func() (string, error) { return "cp-1", nil },
		AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.1.2.3"), nil },
		SystemdResolvedActive: func() bool { return false },
		Random:                strings.NewReader(strings.Repeat("k", 256)),
	}
	file := []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.1.2.3}
nodeRegistration: {name: cp-1}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: ` + version + "\n")
	cfg, _, err := config.ResolveInit(file, config.InitFlags{}, env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func targetOf(cfg *config.Init) Target {
	return Target{Cluster: cfg.ClusterPart(), Node: cfg.NodePart(), Host: manifests.Host{}}
}

// node is a control-plane node at v1.36.3 in a temporary directory: its four manifests and etcd's data.
func node(t *testing.T) nodefs.FS {
	t.Helper()
	fsys := nodefs.FS{Root: t.TempDir()}
	rendered, err := Render(fsys, targetOf(testInit(t, "v1.36.3")), Components)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rendered {
		if err := fsys.WriteFile(staticpod.Path(r.Component), r.YAML, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.WriteFile("/var/lib/etcd/member/snap/db", []byte("the data"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fsys
}

// fakeKubelet fakes the kubelet and the components: a mirror Pod's hash is the hash of the manifest on disk, and a
// component is healthy unless it runs a manifest that holds broken.
type fakeKubelet struct {
	fs     nodefs.FS
	broken map[string]string // component: a string of the manifests that do not come up
	// apiDown: the mirror Pods cannot be read at all.
	apiDown bool
	mu      sync.Mutex
	probes  map[string]int
}

func (k *fakeKubelet) State(_ context.Context, c string) (string, bool, error) {
	if k.apiDown {
		return "", false, errors.New("connection refused")
	}
	b, err := k.fs.ReadFile(staticpod.Path(c))
	if err != nil {
		return "", false, nil
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))[:12], true, nil
}

func (k *fakeKubelet) Probe(_ context.Context, c string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.probes == nil {
		k.probes = map[string]int{}
	}
	k.probes[c]++
	b, _ := k.fs.ReadFile(staticpod.Path(c))
	if s, ok := k.broken[c]; ok && bytes.Contains(b, []byte(s)) {
		if c == staticpod.EtcdName {
			// the broken etcd damaged its data
			_ = k.fs.WriteFile("/var/lib/etcd/member/snap/db", []byte("damaged"), 0o600)
		}
		return errors.New("GET https://127.0.0.1/readyz: connection refused")
	}
	return nil
}

type diagnoser struct{}

func (diagnoser) Diagnose(_ context.Context, c string) string {
	return "container " + c + " (3 attempts): EXITED, exit code 1\nlast log lines:\n  Error: unknown flag: --bogus"
}

type renewer struct{ calls []string }

func (r *renewer) RenewFor(c string) error { r.calls = append(r.calls, c); return nil }
func (r *renewer) RenewAdmin() error       { r.calls = append(r.calls, "admin"); return nil }

func engine(fsys nodefs.FS, k *fakeKubelet, r Renewer, out *bytes.Buffer) *Engine {
	clock := time.Date(2026, 12, 3, 20, 1, 2, 0, time.UTC)
	return &Engine{FS: fsys, Mirror: k, Probe: k, Diagnose: diagnoser{}, Renew: r, Out: out,
		Now: func() time.Time { return clock }, Timeout: 100 * time.Millisecond, Interval: time.Millisecond}
}

const backupDir = "/etc/kubernetes/tmp/kubeadm-backup-manifests-2026-12-03-20-01-02"

func TestUpgradeSuccess(t *testing.T) {
	fsys := node(t)
	old := manifestsOf(t, fsys)
	k := &fakeKubelet{fs: fsys}
	r := &renewer{}
	var out bytes.Buffer
	target := targetOf(testInit(t, "v1.37.2"))
	res, err := engine(fsys, k, r, &out).Upgrade(t.Context(), target, Options{EtcdUpgrade: true})
	if err != nil {
		t.Fatalf("Upgrade: %v\n%s", err, out.String())
	}
	if d := cmp.Diff(Components, res.Upgraded); d != "" {
		t.Errorf("Upgraded (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "admin"}, r.calls); d != "" {
		t.Errorf("renewals (-want +got):\n%s", d)
	}
	want, err := Render(fsys, target, Components)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if got, _ := fsys.ReadFile(staticpod.Path(w.Component)); !bytes.Equal(got, w.YAML) {
			t.Errorf("%s is not the new manifest", w.Component)
		}
		if got, _ := fsys.ReadFile(path.Join(backupDir, w.Component+".yaml")); !bytes.Equal(got, old[w.Component]) {
			t.Errorf("the backup of %s is not the old manifest", w.Component)
		}
	}
	if b, err := fsys.ReadFile("/etc/kubernetes/tmp/kubeadm-backup-etcd-2026-12-03-20-01-02/etcd/member/snap/db"); string(b) != "the data" {
		t.Errorf("etcd backup: %q, %v", b, err)
	}
	for _, line := range []string{
		`[upgrade/etcd] Backed up etcd's data /var/lib/etcd to "` + fsys.Path("/etc/kubernetes/tmp/kubeadm-backup-etcd-2026-12-03-20-01-02") + `"`,
		`[upgrade/staticpods] Component "kube-apiserver" upgraded successfully! (0s)`,
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
	if strings.Contains(string(want[1].YAML), "v1.36.3") {
		t.Error("the new kube-apiserver manifest still names v1.36.3")
	}
}

func TestUpgradeEqualSkips(t *testing.T) {
	fsys := node(t)
	old := manifestsOf(t, fsys)
	k := &fakeKubelet{fs: fsys}
	r := &renewer{}
	var out bytes.Buffer
	res, err := engine(fsys, k, r, &out).Upgrade(t.Context(), targetOf(testInit(t, "v1.36.3")), Options{EtcdUpgrade: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upgraded) != 0 || len(res.Unchanged) != 4 {
		t.Errorf("Upgraded %q, Unchanged %q", res.Upgraded, res.Unchanged)
	}
	for _, c := range Components {
		line := "[upgrade/staticpods] Current and new manifests of " + c + " are equal, skipping upgrade\n"
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q", line)
		}
	}
	if d := cmp.Diff([]string{"admin"}, r.calls); d != "" {
		t.Errorf("renewals (-want +got):\n%s", d)
	}
	if d := cmp.Diff(old, manifestsOf(t, fsys)); d != "" {
		t.Errorf("manifests changed:\n%s", d)
	}
	if fsys.Exists("/etc/kubernetes/tmp/kubeadm-backup-etcd-2026-12-03-20-01-02") {
		t.Error("etcd's data was backed up for nothing")
	}
}

func TestUpgradeWithoutEtcdUpgrade(t *testing.T) {
	fsys := node(t)
	old := manifestsOf(t, fsys)
	var out bytes.Buffer
	res, err := engine(fsys, &fakeKubelet{fs: fsys}, nil, &out).Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: false})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}, res.Upgraded); d != "" {
		t.Errorf("Upgraded (-want +got):\n%s", d)
	}
	if got := manifestsOf(t, fsys)[staticpod.EtcdName]; !bytes.Equal(got, old[staticpod.EtcdName]) {
		t.Error("etcd changed with EtcdUpgrade off")
	}
}

func TestUpgradeRollback(t *testing.T) {
	for i, failing := range Components {
		t.Run(failing, func(t *testing.T) {
			fsys := node(t)
			old := manifestsOf(t, fsys)
			// The new manifests name v1.37.2 (etcd: its 3.7 image): the failing component's does not come up.
			marker := "v1.37.2"
			if failing == staticpod.EtcdName {
				marker = "etcd:3.7.0-0"
			}
			k := &fakeKubelet{fs: fsys, broken: map[string]string{failing: marker}}
			var out bytes.Buffer
			res, err := engine(fsys, k, &renewer{}, &out).Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: true})
			var ce *ComponentError
			if !errors.As(err, &ce) {
				t.Fatalf("Upgrade error %v, want a *ComponentError\n%s", err, out.String())
			}
			if ce.Component != failing {
				t.Errorf("failed component %s, want %s", ce.Component, failing)
			}
			if d := cmp.Diff(Components[:i], res.Upgraded, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("Upgraded before the failure (-want +got):\n%s", d)
			}
			// every manifest replaced in this run is back
			if d := cmp.Diff(old, manifestsOf(t, fsys)); d != "" {
				t.Errorf("manifests after the rollback differ from the old ones:\n%s", d)
			}
			if ce.RollbackErr != nil {
				t.Errorf("RollbackErr: %v", ce.RollbackErr)
			}
			wantBack := append([]string{}, Components[:i+1]...)
			if d := cmp.Diff(wantBack, ce.RolledBack); d != "" {
				t.Errorf("RolledBack (-want +got):\n%s", d)
			}
			data, _ := fsys.ReadFile("/var/lib/etcd/member/snap/db")
			if failing == staticpod.EtcdName {
				if !ce.EtcdDataRestored || string(data) != "the data" {
					t.Errorf("etcd's data not restored: %v, %q", ce.EtcdDataRestored, data)
				}
			} else if ce.EtcdDataRestored {
				t.Error("etcd's data restored although etcd came up")
			}
			msg := err.Error()
			for _, want := range []string{
				"couldn't upgrade control plane: " + failing + ": timed out after 100ms waiting for its health endpoint: GET https://127.0.0.1/readyz: connection refused",
				"container " + failing + " (3 attempts): EXITED, exit code 1\nlast log lines:\n  Error: unknown flag: --bogus",
				"kubeboot has put back the earlier manifests of " + strings.Join(wantBack, ", "),
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if h := hint.Of(err); !strings.Contains(h, "crictl ps -a --name "+failing) {
				t.Errorf("hint %q", h)
			}
		})
	}
}

func TestUpgradeMirrorUnreadable(t *testing.T) {
	fsys := node(t)
	old := manifestsOf(t, fsys)
	var out bytes.Buffer
	_, err := engine(fsys, &fakeKubelet{fs: fsys, apiDown: true}, nil, &out).Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: false})
	want := "couldn't upgrade control plane: kube-apiserver: read the static Pod of kube-apiserver: connection refused"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	if d := cmp.Diff(old, manifestsOf(t, fsys)); d != "" {
		t.Errorf("manifests changed:\n%s", d)
	}
}

func TestUpgradeDryRun(t *testing.T) {
	fsys := node(t)
	old := manifestsOf(t, fsys)
	var out bytes.Buffer
	e := engine(fsys, &fakeKubelet{fs: fsys}, &renewer{}, &out)
	e.DryRun = true
	res, err := e.Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upgraded) != 4 {
		t.Errorf("Upgraded %q", res.Upgraded)
	}
	if d := cmp.Diff(old, manifestsOf(t, fsys)); d != "" {
		t.Errorf("a dry run changed manifests:\n%s", d)
	}
	if fsys.Exists(backupDir) {
		t.Error("a dry run made a backup directory")
	}
}

func manifestsOf(t *testing.T, fsys nodefs.FS) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, c := range Components {
		b, err := fsys.ReadFile(staticpod.Path(c))
		if err != nil {
			t.Fatal(err)
		}
		out[c] = b
	}
	return out
}

// A wait that times out reports why the component was not running, not the call the deadline cut short.
func TestPollKeepsTheCauseBeforeTheDeadline(t *testing.T) {
	e := &Engine{Interval: time.Millisecond}
	wctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	err := e.poll(t.Context(), wctx, func() error {
		calls++
		if calls < 3 {
			return errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		<-wctx.Done()
		return errors.New("client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline")
	})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("poll = %v, want the last error before the deadline (connection refused)", err)
	}
}
