//go:build e2e

package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

// secretRoots are the node directories where init, join and the kubelet keep private keys and kubeconfigs.
var secretRoots = []string{"/etc/kubernetes", "/var/lib/kubelet/pki"}

// checkKeyModes is a row of issue 19's security table on a real node: every file holding a private key (a PEM
// private key, or a kubeconfig with client-key-data) is readable by its owner only, and no other user can list
// the certificate directories (not world-readable, or a directory above not world-searchable). Other directories
// holding keys (/etc/kubernetes, /var/lib/kubelet/pki) belong to the packages and the kubelet and are only
// reported. It fails when it finds no key at all, so that it cannot pass on an empty node.
func checkKeyModes(t *testing.T, node string) {
	t.Helper()
	keys := 0
	dirs := map[string]bool{}
	for _, root := range secretRoots {
		err := filepath.WalkDir(nodeHostPath(node, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && d == nil {
					return filepath.SkipDir
				}
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte("PRIVATE KEY-----")) && !bytes.Contains(b, []byte("client-key-data:")) {
				return nil
			}
			keys++
			nodePath := strings.TrimPrefix(p, nodeHostPath(node, "/"))
			nodePath = "/" + strings.TrimPrefix(nodePath, "/")
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: %s holds a private key and is %v, want 0600", node, nodePath, fi.Mode().Perm())
			}
			dirs[path.Dir(nodePath)] = true
			return nil
		})
		if err != nil {
			t.Fatalf("%s: walk %s: %v", node, root, err)
		}
	}
	if keys == 0 {
		t.Fatalf("%s: no private key under %v", node, secretRoots)
	}
	for dir := range dirs {
		switch {
		case !listableByOthers(t, node, dir):
		case dir == pkiDir || strings.HasPrefix(dir, pkiDir+"/"):
			t.Errorf("%s: %s holds private keys and any user may list it", node, dir)
		default:
			// /etc/kubernetes is the packages' (0755, as on a kubeadm node), /var/lib/kubelet/pki the kubelet's.
			t.Logf("%s: %s holds private keys, readable by root only, in a directory any user may list (not kubeboot's)", node, dir)
		}
	}
	t.Logf("%s: %d files hold private keys, each 0600; the certificate directories no other user can list", node, keys)
}

const pkiDir = "/etc/kubernetes/pki"

// listableByOthers says whether a user other than the owner may list the node's directory dir: it is
// world-readable and every directory above it, up to the node's /var/lib or /etc, is world-searchable (those and
// the ones above them are the machine's, 0755).
func listableByOthers(t *testing.T, node, dir string) bool {
	t.Helper()
	fi, err := os.Stat(nodeHostPath(node, dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o004 == 0 {
		return false
	}
	for d := path.Dir(dir); d != "/etc" && d != "/var/lib" && d != "/"; d = path.Dir(d) {
		fi, err := os.Stat(nodeHostPath(node, d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return false
		}
	}
	return true
}

// checkNoSecretsInLogs is a row of issue 19's security table: the output of every kubeboot init and join the lab
// ran on nodes (logs/kubeboot-*.log) carries no bootstrap token secret and no certificate key from the nodes'
// configurations, except in the join instructions init prints at its end (the one intended exception), and no
// private key at all. It fails when it finds no secret or no log to look for, so that it cannot pass on nothing.
func checkNoSecretsInLogs(t *testing.T, nodes ...string) {
	t.Helper()
	secrets := map[string]string{} // value: what it is
	tokenRE := regexp.MustCompile(`(?i)token: "?[a-z0-9]{6}\.([a-z0-9]{16})`)
	keyRE := regexp.MustCompile(`certificateKey: "?([0-9a-f]{64})`)
	var logs []string
	for _, n := range nodes {
		cfgs, _ := filepath.Glob(filepath.Join(nodeDir(n), "kubeboot-*.yaml"))
		for _, f := range cfgs {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tokenRE.FindAllStringSubmatch(string(b), -1) {
				secrets[m[1]] = "a bootstrap token secret"
			}
			for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
				secrets[m[1]] = "the certificate key"
			}
		}
		l, _ := filepath.Glob(filepath.Join(nodeDir(n), "logs", "kubeboot-*.log"))
		logs = append(logs, l...)
	}
	// What init made itself (a certificate key it generated) is known from its join instructions.
	shownRE := regexp.MustCompile(`--token [a-z0-9]{6}\.([a-z0-9]{16})|--certificate-key ([0-9a-f]{64})`)
	for _, f := range logs {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(filepath.Base(f), "kubeboot-init") {
			for _, m := range shownRE.FindAllStringSubmatch(string(b), -1) {
				if m[1] != "" {
					secrets[m[1]] = "a bootstrap token secret"
				} else {
					secrets[m[2]] = "the certificate key"
				}
			}
		}
	}
	if len(secrets) == 0 || len(logs) == 0 {
		t.Fatalf("found %d secrets in the nodes' kubeboot configurations and %d kubeboot logs: nothing to check", len(secrets), len(logs))
	}
	// The join instructions: `kubeboot join ENDPOINT --token ID.SECRET \` and `--control-plane --certificate-key KEY`.
	instruction := regexp.MustCompile(`^(kubeboot join \S+ --token |\s+kubeboot join \S+ --token |\s+--control-plane --certificate-key )`)
	lines, shown := 0, 0
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s shows a private key", f)
		}
		for i, line := range strings.Split(string(b), "\n") {
			lines++
			for s, what := range secrets {
				if !strings.Contains(line, s) {
					continue
				}
				if strings.HasPrefix(filepath.Base(f), "kubeboot-init") && instruction.MatchString(line) {
					shown++
					continue
				}
				t.Errorf("%s:%d shows %s outside the join instructions", f, i+1, what)
			}
		}
	}
	t.Logf("%d secrets looked for in %d lines of %d kubeboot logs: only in the %d lines of join instructions", len(secrets), lines, len(logs), shown)
}

// checkDryRunsWriteNoKeys is a row of issue 19's security table on a real, empty node (a reset worker): `init
// --dry-run` (with the control plane's configuration, made this node's) and a worker `join --dry-run` (p, with
// real discovery against the cluster) generate keys and credentials in memory only. Neither changes a file of
// the node, neither prints key material, and no file written while they ran, in the node's directories or in
// the machine's temporary directories, holds key material or the token's secret.
func checkDryRunsWriteNoKeys(t *testing.T, p joinParams) {
	t.Helper()
	node := p.node
	initDoc, err := os.ReadFile(filepath.Join(nodeDir(cp1), "kubeboot-init.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	initDoc = bytes.ReplaceAll(bytes.ReplaceAll(initDoc, []byte(cp1IP), []byte(p.ip)), []byte(cp1), []byte(node))
	initFile := filepath.Join(nodeDir(node), "e2e-dry-run-init.yaml")
	joinFile := filepath.Join(nodeDir(node), "e2e-dry-run-join.yaml")
	if err := os.WriteFile(initFile, initDoc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(joinFile, []byte(joinConfig(p)), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := p.token[7:]
	for _, run := range []struct {
		name string
		args []string
		want []string // lines the dry run must print: it did generate what it hides
	}{
		// A worker holds no control-plane images (the lab imports only those it runs): preflight's image check
		// would refuse the dry run, which is about keys.
		{"init", []string{"init", "--dry-run", "--config", initFile, "--ignore-preflight-errors", "ImagePull"}, []string{
			"[dryrun]   -rw------- /etc/kubernetes/pki/apiserver.key (",
			"[dryrun]   -rw------- /etc/kubernetes/pki/ca.key (",
			"[dryrun]   -rw------- /etc/kubernetes/admin.conf (",
		}},
		{"join", []string{"join", "--dry-run", "--config", joinFile}, []string{
			"  dry run: would request the kubelet's client certificate for " + node,
			" /var/lib/kubelet/config.yaml (",
		}},
	} {
		before := filesOf(t, node)
		start := time.Now()
		out, err := inNode(t.Context(), node, append([]string{kubeboot}, run.args...)...)
		if err != nil {
			t.Fatalf("kubeboot %s --dry-run on %s: %v\n%s", run.name, node, err, out)
		}
		for _, w := range run.want {
			if !strings.Contains(out, w) {
				t.Errorf("kubeboot %s --dry-run printed no %q:\n%s", run.name, w, out)
			}
		}
		if keyleak.In([]byte(out)) {
			t.Errorf("kubeboot %s --dry-run printed key material:\n%s", run.name, out)
		}
		if run.name == "join" && strings.Contains(out, secret) {
			t.Errorf("kubeboot join --dry-run printed the token's secret:\n%s", out)
		}
		if after := filesOf(t, node); after != before {
			t.Errorf("kubeboot %s --dry-run changed %s:\nbefore:\n%s\nafter:\n%s", run.name, node, before, after)
		}
		// A canary with key material, written inside the window the scan below covers (files changed since the
		// dry run started): the scan must find it, or it could not find what the dry run left either.
		canary := nodeHostPath(node, "/var/lib/kubeboot/e2e-dry-run-canary")
		if err := os.WriteFile(canary, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var scanned int
		var found []string
		sawCanary := false
		roots := []string{"/tmp", "/var/tmp", "/dev/shm"}
		for _, d := range dryRunRoots {
			roots = append(roots, nodeHostPath(node, d))
		}
		for _, root := range roots {
			_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				fi, err := d.Info()
				if err != nil || fi.ModTime().Before(start) {
					return nil
				}
				scanned++
				b, err := os.ReadFile(path)
				switch {
				case path == canary:
					sawCanary = keyleak.In(b)
				case err == nil && (keyleak.In(b) || bytes.Contains(b, []byte(secret))):
					found = append(found, path)
				}
				return nil
			})
		}
		_ = os.Remove(canary)
		if !sawCanary {
			t.Fatalf("the scan for key material did not see the canary %s written during the run", canary)
		}
		if len(found) > 0 {
			t.Errorf("kubeboot %s --dry-run: files written while it ran hold key material or the token's secret: %q", run.name, found)
		}
		t.Logf("kubeboot %s --dry-run on %s: %d lines printed, node unchanged, %d files written meanwhile under %v (the canary among them), none with key material", run.name, node, strings.Count(out, "\n"), scanned, roots)
	}
}

// dryRunRoots are a node's own directories where a run of kubeboot could leave files (those of lab/node's
// BoundDirs that kubeboot writes).
var dryRunRoots = []string{"/etc/kubernetes", "/var/lib/kubelet", "/var/lib/kubeboot", "/var/lib/etcd", "/run/containerd"}
