package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/reset"
)

// resetFixture runs `kubeboot reset ...` on a temporary root with no runtime, no mounts and no init system.
type resetFixture struct {
	root    string
	stdin   string
	sockets []string // CRI sockets dialled
	counted int      // live etcd member counts asked for
	etcdAt  []string // endpoints etcd was dialled at
}

type noMounts struct{}

func (noMounts) MountPoints() ([]string, error) { return []string{"/"}, nil }
func (noMounts) Unmount(string, int) error      { return errors.New("nothing to unmount") }

func (f *resetFixture) deps() resetDeps {
	return resetDeps{
		in: strings.NewReader(f.stdin),
		node: func(fsys nodefs.FS, out io.Writer) nodeenv.Env {
			return nodeenv.Env{
				FS:        fsys,
				Out:       out,
				Preflight: preflight.Env{FS: fsys, Geteuid: func() int { return 0 }},
				DialRuntime: func(_ context.Context, socket string) (cri.Runtime, error) {
					f.sockets = append(f.sockets, socket)
					return nil, errors.New("no runtime in this test")
				},
				InitSystem: kubelet.None{},
			}
		},
		mounts: noMounts{},
		etcdMembers: func(context.Context, nodefs.FS, *reset.EtcdMember) ([]etcd.Member, error) {
			f.counted++
			return make([]etcd.Member, 3), nil
		},
		etcd: func(_ context.Context, _ nodefs.FS, _ *reset.EtcdMember, endpoints []string, _ time.Duration) (reset.EtcdMembership, error) {
			f.etcdAt = append(f.etcdAt, endpoints...)
			return nil, errors.New("dial tcp 10.0.0.1:2379: connect: connection refused")
		},
	}
}

func (f *resetFixture) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := &cobra.Command{Use: "kubeboot", SilenceUsage: true, SilenceErrors: true}
	addGlobalFlags(root)
	root.AddCommand(newResetCmdWith(&out, f.deps()))
	root.SetArgs(append([]string{"reset", "--rootfs", f.root}, args...))
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func newResetFixture(t *testing.T, files map[string]string) *resetFixture {
	t.Helper()
	f := &resetFixture{root: t.TempDir()}
	fsys := nodefs.FS{Root: f.root}
	for p, c := range files {
		if err := fsys.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

const etcdOnlyMember = `apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  containers:
  - name: etcd
    command: [etcd, --name=cp1, --initial-cluster=cp1=https://10.0.0.1:2380, --initial-advertise-peer-urls=https://10.0.0.1:2380,
      --listen-client-urls=https://127.0.0.1:2379, --advertise-client-urls=https://10.0.0.1:2379]
  volumes:
  - name: etcd-data
    hostPath: {path: /var/lib/etcd}
`

func TestResetCommand(t *testing.T) {
	t.Run("no --force and nothing on stdin: refused with a hint", func(t *testing.T) {
		f := newResetFixture(t, map[string]string{"/etc/kubernetes/admin.conf": "x"})
		_, err := f.run(t)
		if err == nil || err.Error() != "phase preflight: reset not confirmed: standard input is not a terminal and gave no answer" ||
			hint.Of(err) != "run 'kubeboot reset --force' to reset without a question (or answer y on standard input)" {
			t.Fatalf("error = %v", err)
		}
		if _, err := os.Stat(filepath.Join(f.root, "etc/kubernetes/admin.conf")); err != nil {
			t.Error("a refused reset deleted admin.conf")
		}
	})
	t.Run("-f resets and prints what it did not clean", func(t *testing.T) {
		f := newResetFixture(t, map[string]string{
			"/etc/kubernetes/admin.conf":            "x",
			"/etc/kubernetes/manifests/etcd.yaml":   etcdOnlyMember,
			"/var/lib/kubelet/instance-config.yaml": `containerRuntimeEndpoint: "unix:///run/crio/crio.sock"`,
		})
		out, err := f.run(t, "-f")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(f.root, "etc/kubernetes/admin.conf")); err == nil {
			t.Error("admin.conf is still there")
		}
		if strings.Join(f.sockets, ",") != "unix:///run/crio/crio.sock" {
			t.Errorf("dialled %q, want the socket of the node's kubelet configuration", f.sockets)
		}
		if f.counted != 0 || strings.Join(f.etcdAt, ",") != "https://10.0.0.1:2379" {
			t.Errorf("asked etcd at %q (and 127.0.0.1 %d times) for the members of a node under --rootfs: want its advertised URL only", f.etcdAt, f.counted)
		}
		for _, line := range []string{
			"The reset process does not clean up:\n",
			"  - kubeconfig files copied for users, such as $HOME/.kube/config\n",
			"  - the kubelet: no init system could restart it; restart it yourself, or it keeps the removed cluster's credentials\n",
		} {
			if !strings.Contains(out, line) {
				t.Errorf("output lacks %q:\n%s", line, out)
			}
		}
	})
	t.Run("a ResetConfiguration, with flags winning", func(t *testing.T) {
		f := newResetFixture(t, map[string]string{"/etc/kubernetes/pki2/ca.key": "k", "/etc/kubernetes/pki/ca.key": "k"})
		file := filepath.Join(t.TempDir(), "reset.yaml")
		doc := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforce: true\ncertificatesDir: /etc/kubernetes/pki2\ncriSocket: unix:///run/from-file.sock\n"
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := f.run(t, "--config", file, "--cri-socket", "unix:///run/from-flag.sock")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if strings.Join(f.sockets, ",") != "unix:///run/from-flag.sock" {
			t.Errorf("dialled %q, want the flag's socket", f.sockets)
		}
		if _, err := os.Stat(filepath.Join(f.root, "etc/kubernetes/pki2/ca.key")); err == nil {
			t.Error("the file's certificatesDir was not emptied")
		}
		if _, err := os.Stat(filepath.Join(f.root, "etc/kubernetes/pki/ca.key")); err != nil {
			t.Error("the default certificates directory was emptied although the file names another")
		}
	})
	t.Run("unknown field in the file", func(t *testing.T) {
		f := newResetFixture(t, nil)
		file := filepath.Join(t.TempDir(), "reset.yaml")
		if err := os.WriteFile(file, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforse: true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := f.run(t, "--config", file)
		if err == nil || !strings.Contains(err.Error(), `unknown field "forse"`) {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("--dry-run", func(t *testing.T) {
		f := newResetFixture(t, map[string]string{"/etc/kubernetes/admin.conf": "x"})
		out, err := f.run(t, "--dry-run")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(f.root, "etc/kubernetes/admin.conf")); err != nil {
			t.Error("a dry run deleted admin.conf")
		}
		if !strings.Contains(out, "  [dryrun] would delete /etc/kubernetes/admin.conf\n") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("phase subcommand runs one phase", func(t *testing.T) {
		f := newResetFixture(t, map[string]string{"/etc/kubernetes/admin.conf": "x"})
		var out bytes.Buffer
		root := &cobra.Command{Use: "kubeboot", SilenceUsage: true, SilenceErrors: true}
		addGlobalFlags(root)
		root.AddCommand(newResetCmdWith(&out, f.deps()))
		root.SetArgs([]string{"reset", "phase", "remove-etcd-member", "--rootfs", f.root})
		if err := root.ExecuteContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "Are you sure") || !strings.Contains(out.String(), "[remove-etcd-member] done") {
			t.Errorf("output:\n%s", out.String())
		}
		if _, err := os.Stat(filepath.Join(f.root, "etc/kubernetes/admin.conf")); err != nil {
			t.Error("remove-etcd-member alone deleted admin.conf")
		}
	})
}

func TestRootHasTokenAndReset(t *testing.T) {
	code, out, errs := run(t, "token", "generate")
	if code != 0 || len(strings.TrimSpace(out)) != 23 {
		t.Errorf("token generate: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = run(t, "token", "create", "bad")
	if code != 1 || !strings.Contains(errs, "error: TOKEN argument: malformed bootstrap token (3 characters)") ||
		!strings.Contains(errs, "hint: 'kubeboot token generate' prints a valid random token") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if code, out, _ := run(t, "reset", "--help"); code != 0 || !strings.Contains(out, "cleanup-node") {
		t.Errorf("reset --help: exit %d\n%s", code, out)
	}
}
