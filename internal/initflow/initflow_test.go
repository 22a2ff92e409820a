package initflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/workflow"
)

type fakeInitSystem struct {
	restarted []string
	err       error
	onRestart func() // optional: sees the node as the kubelet would when it starts
}

func (f *fakeInitSystem) Restart(_ context.Context, s string) error {
	f.restarted = append(f.restarted, s)
	if f.onRestart != nil {
		f.onRestart()
	}
	return f.err
}
func (f *fakeInitSystem) Name() string { return "fake" }

func testConfig(t *testing.T, alg config.EncryptionAlgorithmType) *config.Init {
	t.Helper()
	flags := config.InitFlags{}
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
encryptionAlgorithm: ` + string(alg) + "\n")
	cfg, _, err := config.ResolveInit(file, flags, env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRenderControlPlane renders a whole control-plane node into a directory and checks that every file kubeadm
// writes is there, with kubeadm's mode.
func TestRenderControlPlane(t *testing.T) {
	want := map[string]os.FileMode{
		"/etc/kubernetes/admin.conf":                             0o600,
		"/etc/kubernetes/super-admin.conf":                       0o600,
		"/etc/kubernetes/kubelet.conf":                           0o600,
		"/etc/kubernetes/controller-manager.conf":                0o600,
		"/etc/kubernetes/scheduler.conf":                         0o600,
		"/etc/kubernetes/manifests/etcd.yaml":                    0o600,
		"/etc/kubernetes/manifests/kube-apiserver.yaml":          0o600,
		"/etc/kubernetes/manifests/kube-controller-manager.yaml": 0o600,
		"/etc/kubernetes/manifests/kube-scheduler.yaml":          0o600,
		"/etc/kubernetes/pki/ca.crt":                             0o644,
		"/etc/kubernetes/pki/ca.key":                             0o600,
		"/etc/kubernetes/pki/apiserver.crt":                      0o644,
		"/etc/kubernetes/pki/apiserver.key":                      0o600,
		"/etc/kubernetes/pki/apiserver-kubelet-client.crt":       0o644,
		"/etc/kubernetes/pki/apiserver-kubelet-client.key":       0o600,
		"/etc/kubernetes/pki/front-proxy-ca.crt":                 0o644,
		"/etc/kubernetes/pki/front-proxy-ca.key":                 0o600,
		"/etc/kubernetes/pki/front-proxy-client.crt":             0o644,
		"/etc/kubernetes/pki/front-proxy-client.key":             0o600,
		"/etc/kubernetes/pki/etcd/ca.crt":                        0o644,
		"/etc/kubernetes/pki/etcd/ca.key":                        0o600,
		"/etc/kubernetes/pki/etcd/server.crt":                    0o644,
		"/etc/kubernetes/pki/etcd/server.key":                    0o600,
		"/etc/kubernetes/pki/etcd/peer.crt":                      0o644,
		"/etc/kubernetes/pki/etcd/peer.key":                      0o600,
		"/etc/kubernetes/pki/etcd/healthcheck-client.crt":        0o644,
		"/etc/kubernetes/pki/etcd/healthcheck-client.key":        0o600,
		"/etc/kubernetes/pki/apiserver-etcd-client.crt":          0o644,
		"/etc/kubernetes/pki/apiserver-etcd-client.key":          0o600,
		"/etc/kubernetes/pki/sa.key":                             0o600,
		"/etc/kubernetes/pki/sa.pub":                             0o644,
		"/var/lib/kubelet/config.yaml":                           0o644,
		"/var/lib/kubelet/kubeadm-flags.env":                     0o644,
		"/var/lib/kubelet/instance-config.yaml":                  0o644,
	}
	for _, alg := range []config.EncryptionAlgorithmType{config.EncryptionAlgorithmRSA2048, config.EncryptionAlgorithmECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			fsys := nodefs.FS{Root: t.TempDir()}
			initSys := &fakeInitSystem{}
			var out bytes.Buffer
			w := workflow.Locked(&out) // the file phases run concurrently
			d := &Data{Env: nodeenv.Env{FS: fsys, Out: w, Source: pki.SystemSource(), InitSystem: initSys}, Cfg: testConfig(t, alg), Hostname: "cp-1"}
			r := workflow.Runner[*Data]{Phases: Phases(), Out: w}
			if err := r.Run(t.Context(), d, workflow.Options{Skip: []string{"preflight", "wait-control-plane", "controller-accounts", "upload-config", "mark-control-plane", "bootstrap-token", "kubelet-finalize", "addon"}}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			var got []string
			for _, dir := range []string{"/etc/kubernetes", "/var/lib/kubelet"} {
				files, err := fsys.List(dir)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, files...)
			}
			if len(got) != len(want) {
				t.Errorf("wrote %d files, want %d: %v", len(got), len(want), got)
			}
			for _, f := range got {
				mode, ok := want[f]
				if !ok {
					t.Errorf("unexpected file %s", f)
					continue
				}
				st, err := os.Stat(fsys.Path(f))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != mode {
					t.Errorf("%s mode %v, want %v", f, st.Mode().Perm(), mode)
				}
			}
			if !strings.Contains(out.String(), "kubeboot join 10.1.2.3:6443 --token ") || !strings.Contains(out.String(), "--discovery-token-ca-cert-hash sha256:") {
				t.Errorf("no join command printed:\n%s", out.String())
			}
			if strings.Join(initSys.restarted, ",") != "kubelet" {
				t.Errorf("restarted %v, want the kubelet once", initSys.restarted)
			}
		})
	}
}

// In a whole init the kubelet starts early, while certificates and manifests are still being written: every file
// it reads when it starts must exist by then, and the static Pods' directory too, so that it watches it.
func TestKubeletStartsWithWhatItReads(t *testing.T) {
	for i := range 5 { // the phases race: look at several runs
		fsys := nodefs.FS{Root: t.TempDir()}
		var missing []string
		initSys := &fakeInitSystem{onRestart: func() {
			for _, f := range []string{"/etc/kubernetes/pki/ca.crt", config.KubeletKubeconfigFile, config.KubeletConfigFile,
				config.KubeletFlagsEnvFile, staticpod.Dir} {
				if !fsys.Exists(f) {
					missing = append(missing, f)
				}
			}
		}}
		var out bytes.Buffer
		w := workflow.Locked(&out)
		d := &Data{Env: nodeenv.Env{FS: fsys, Out: w, Source: pki.SystemSource(), InitSystem: initSys}, Cfg: testConfig(t, config.EncryptionAlgorithmRSA2048), Hostname: "cp-1"}
		r := workflow.Runner[*Data]{Phases: Phases(), Out: w}
		keep := map[string]bool{"certs": true, "kubeconfig": true, "etcd": true, "control-plane": true, "kubelet-start": true}
		var skip []string
		for _, p := range Phases() {
			if !keep[p.Name] {
				skip = append(skip, p.Name)
			}
		}
		if err := r.Run(t.Context(), d, workflow.Options{Skip: skip}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if len(initSys.restarted) != 1 || len(missing) > 0 {
			t.Fatalf("run %d: restarted %v; missing when the kubelet started: %v", i, initSys.restarted, missing)
		}
	}
}

func TestKubeletStartWithoutInitSystemSaysWhatToDo(t *testing.T) {
	var out bytes.Buffer
	d := &Data{Env: nodeenv.Env{FS: nodefs.FS{Root: t.TempDir()}, Out: &out, InitSystem: kubelet.None{}}, Cfg: testConfig(t, config.EncryptionAlgorithmECDSAP256), Hostname: "cp-1"}
	if err := runKubeletStart(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "restart the kubelet yourself so it reads /var/lib/kubelet/config.yaml") {
		t.Fatalf("no instruction printed:\n%s", out.String())
	}
	boom := errors.New("unit kubelet.service not found")
	d.InitSystem = &fakeInitSystem{err: boom}
	if err := runKubeletStart(t.Context(), d); !errors.Is(err, boom) || err.Error() != "restart the kubelet through fake: unit kubelet.service not found" {
		t.Fatalf("got %v", err)
	}
}

// In a whole init each static Pod's manifest is written only once every file its Pod reads exists, and the keys
// neither etcd nor the API server reads are made after their two manifests, so that those two start soonest. The
// files each Pod reads are taken from the manifests themselves (the paths under /etc/kubernetes in its command).
func TestManifestsWaitForWhatTheirPodsReadAndNoMore(t *testing.T) {
	cfg := testConfig(t, config.EncryptionAlgorithmRSA2048)
	keep := map[string]bool{"certs": true, "kubeconfig": true, "etcd": true, "control-plane": true, "kubelet-start": true}
	var skip []string
	for _, p := range Phases() {
		if !keep[p.Name] {
			skip = append(skip, p.Name)
		}
	}
	run := func(fsys nodefs.FS, phases []workflow.Phase[*Data]) {
		t.Helper()
		var out bytes.Buffer
		w := workflow.Locked(&out)
		d := &Data{Env: nodeenv.Env{FS: fsys, Out: w, Source: pki.SystemSource(), InitSystem: &fakeInitSystem{}}, Cfg: cfg, Hostname: "cp-1"}
		r := workflow.Runner[*Data]{Phases: phases, Out: w}
		if err := r.Run(t.Context(), d, workflow.Options{Skip: skip}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
	}
	// A first init, to learn from its manifests which files each Pod reads.
	ref := nodefs.FS{Root: t.TempDir()}
	run(ref, Phases())
	manifestOf := map[string]string{
		"etcd/local": "etcd.yaml", "control-plane/apiserver": "kube-apiserver.yaml",
		"control-plane/controller-manager": "kube-controller-manager.yaml", "control-plane/scheduler": "kube-scheduler.yaml",
	}
	fileRef := regexp.MustCompile(`=(/etc/kubernetes/[^\s",]+\.(?:crt|key|pub|conf))`)
	reads := map[string][]string{}
	for phase, name := range manifestOf {
		b, err := ref.ReadFile(staticpod.Dir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range fileRef.FindAllStringSubmatch(string(b), -1) {
			reads[phase] = append(reads[phase], m[1])
		}
		if len(reads[phase]) == 0 {
			t.Fatalf("%s names no file under /etc/kubernetes: the test's pattern is wrong", name)
		}
	}

	// Each file a Pod reads is made by a phase its manifest's phase needs directly (podReads), so the order holds
	// whatever the timing.
	producer := map[string]string{
		cfg.Cluster.CertificatesDir + "/" + pki.ServiceAccountKeyName: "certs/" + pki.SAPhase,
		cfg.Cluster.CertificatesDir + "/" + pki.ServiceAccountPubName: "certs/" + pki.SAPhase,
	}
	for _, s := range pki.Specs() {
		producer[s.CertPath(cfg.Cluster.CertificatesDir)] = "certs/" + s.Name
		producer[s.KeyPath(cfg.Cluster.CertificatesDir)] = "certs/" + s.Name
	}
	kcs, err := kubeconfig.Specs(cfg.ClusterPart(), cfg.NodePart())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kcs {
		producer[k.File] = "kubeconfig/" + k.Name
	}
	for phase, files := range reads {
		for _, f := range files {
			if p, ok := producer[f]; !ok || !slices.Contains(podReads[phase], p) {
				t.Errorf("%s's Pod reads %s, made by phase %q, which is not in podReads[%q] %v", phase, f, p, phase, podReads[phase])
			}
		}
	}

	for i := range 3 { // the phases race: look at several runs
		fsys := nodefs.FS{Root: t.TempDir()}
		var mu sync.Mutex
		var problems []string
		check := func(phase string, paths ...string) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range paths {
				if !fsys.Exists(p) {
					problems = append(problems, phase+" ran before "+p+" existed")
				}
			}
		}
		phases := wrapRuns(Phases(), func(path string, orig func(context.Context, *Data) error) func(context.Context, *Data) error {
			switch {
			case reads[path] != nil:
				return func(ctx context.Context, d *Data) error { check(path, reads[path]...); return orig(ctx, d) }
			case slices.Contains([]string{"certs/etcd-healthcheck-client", "kubeconfig/admin", "kubeconfig/super-admin",
				"kubeconfig/controller-manager", "kubeconfig/scheduler"}, path): // what neither etcd nor the API server reads
				return func(ctx context.Context, d *Data) error {
					check(path, staticpod.Dir+"/etcd.yaml", staticpod.Dir+"/kube-apiserver.yaml")
					return orig(ctx, d)
				}
			}
			return orig
		})
		run(fsys, phases)
		if len(problems) > 0 {
			t.Fatalf("run %d:\n%s", i, strings.Join(problems, "\n"))
		}
	}
}

// wrapRuns returns a copy of phases whose Run functions are replaced by wrap(path, Run).
func wrapRuns(phases []workflow.Phase[*Data], wrap func(path string, run func(context.Context, *Data) error) func(context.Context, *Data) error) []workflow.Phase[*Data] {
	var walk func(prefix string, ps []workflow.Phase[*Data]) []workflow.Phase[*Data]
	walk = func(prefix string, ps []workflow.Phase[*Data]) []workflow.Phase[*Data] {
		out := slices.Clone(ps)
		for i := range out {
			path := prefix + out[i].Name
			out[i].Phases = walk(path+"/", out[i].Phases)
			if out[i].Run != nil {
				out[i].Run = wrap(path, out[i].Run)
			}
		}
		return out
	}
	return walk("", phases)
}

// TestClusterPhasesRunAtOnce checks the order after the static Pods: the phases that write API objects start
// together, while wait-control-plane still runs (their first request waits for the API server itself);
// kubelet-finalize waits for the wait; show-join-command comes after all of them.
func TestClusterPhasesRunAtOnce(t *testing.T) {
	api := []string{"controller-accounts", "upload-config/kubeadm", "upload-certs", "mark-control-plane", "bootstrap-token",
		"addon/coredns", "addon/kube-proxy"}
	var started sync.WaitGroup
	started.Add(len(api))
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	var finished atomic.Int32
	var waitDone, finalized, joinShown atomic.Bool
	phases := wrapRuns(Phases(), func(path string, _ func(context.Context, *Data) error) func(context.Context, *Data) error {
		switch {
		case path == "wait-control-plane":
			return func(context.Context, *Data) error {
				select {
				case <-all:
					waitDone.Store(true)
					return nil
				case <-time.After(10 * time.Second):
					return errors.New("the API phases did not all start while the control plane was being waited for")
				}
			}
		case path == "kubelet-finalize/enable-client-cert-rotation":
			return func(context.Context, *Data) error {
				if !waitDone.Load() {
					return errors.New("kubelet-finalize ran before wait-control-plane ended")
				}
				finalized.Store(true)
				return nil
			}
		case path == "show-join-command":
			return func(context.Context, *Data) error {
				joinShown.Store(true)
				if n := finished.Load(); n != int32(len(api)) || !finalized.Load() {
					return fmt.Errorf("show-join-command ran with %d of the %d API phases done (kubelet-finalize done: %v)", n, len(api), finalized.Load())
				}
				return nil
			}
		case !slices.Contains(api, path):
			return func(context.Context, *Data) error { return nil }
		}
		return func(ctx context.Context, _ *Data) error {
			started.Done()
			select {
			case <-all:
				finished.Add(1)
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("the other API phases did not start alongside this one")
			}
		}
	})
	var out bytes.Buffer
	w := workflow.Locked(&out)
	d := &Data{Env: nodeenv.Env{FS: nodefs.FS{Root: t.TempDir()}, Out: w}, Cfg: testConfig(t, config.EncryptionAlgorithmECDSAP256), UploadCerts: true}
	r := workflow.Runner[*Data]{Phases: phases, Out: w}
	if err := r.Run(t.Context(), d, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !joinShown.Load() {
		t.Fatal("show-join-command did not run")
	}
}
