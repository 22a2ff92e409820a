//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cluster-bootstrap/token/jws"

	"kubeboot.dev/kubeboot/internal/release"
)

const (
	cp1   = "kblab-cp1"
	cp1IP = "10.77.0.11"
)

// The binaries of the release the lab runs by default (the tests bring labs up without --kubernetes-version).
var (
	binDir    = filepath.Join(stateDir, "bin", release.DefaultVersion())
	kubeboot  = filepath.Join(binDir, "kubeboot")
	kubeadm   = filepath.Join(binDir, "kubeadm")
	kubectlIn = filepath.Join(binDir, "kubectl")
)

// nodeDir is a node's directory; the lab makes it visible at the same path inside the node.
func nodeDir(node string) string { return filepath.Join(stateDir, "nodes", node) }

// inNode runs a command inside a lab node and returns its combined output.
func inNode(ctx context.Context, node string, args ...string) (string, error) {
	return lab(ctx, append([]string{"exec", node, "--"}, args...)...)
}

// TestKubebootInit brings up a cluster whose control plane kubeboot made (workers joined by upstream kubeadm),
// checks what kubeadm users and a kubeadm join rely on, then the refusals of bad input, reset, and init again.
func TestKubebootInit(t *testing.T) {
	ctx := t.Context()
	startLab(t, "--control-planes", "1", "--workers", "1", "--bootstrapper", "kubeboot", "--worker-bootstrapper", "kubeadm")
	initConfig := filepath.Join(nodeDir(cp1), "kubeboot-init.yaml")
	b, err := os.ReadFile(initConfig)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`token: "?(([a-z0-9]{6})\.([a-z0-9]{16}))`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no bootstrap token in %s", initConfig)
	}
	tokenID, tokenSecret := m[2], m[3]

	t.Run("nodes Ready", func(t *testing.T) { checkNodesReady(t, cp1, "kblab-w1") })
	t.Run("kube-system Pods Running", func(t *testing.T) { checkKubeSystem(t, 1, 2) })
	t.Run("the controller-manager needed no ServiceAccount beyond kubeboot's", checkControllerAccounts)
	t.Run("CoreDNS answers a Pod", func(t *testing.T) { checkDNSAndServiceIP(t, "kblab-w1") })

	t.Run("security: every private key 0600, in directories no other user can list", func(t *testing.T) { checkKeyModes(t, cp1) })
	t.Run("security: init's output shows the token only in the join instructions", func(t *testing.T) { checkNoSecretsInLogs(t, cp1) })

	t.Run("admin.conf may do everything", func(t *testing.T) {
		out, err := inNode(ctx, cp1, kubectlIn, "--kubeconfig", "/etc/kubernetes/admin.conf", "auth", "can-i", "*", "*")
		if err != nil || strings.TrimSpace(out) != "yes" {
			t.Fatalf("auth can-i '*' '*': %q, %v", out, err)
		}
	})

	// Issue 19's security table: anonymous access is limited to cluster-info (and the health and version
	// endpoints every API server opens); every other read of kube-public and kube-system is 403.
	t.Run("security: anonymous reads cluster-info and nothing else", func(t *testing.T) {
		for _, c := range []struct {
			path string
			want int
		}{
			{"/api/v1/namespaces/kube-public/configmaps/cluster-info", http.StatusOK},
			{"/readyz", http.StatusOK},
			{"/livez", http.StatusOK},
			{"/version", http.StatusOK},
			{"/api/v1/namespaces/kube-public/configmaps", http.StatusForbidden},
			{"/api/v1/namespaces/kube-public/secrets", http.StatusForbidden},
			{"/api/v1/namespaces/kube-system/configmaps", http.StatusForbidden},
			{"/api/v1/namespaces/kube-system/configmaps/kubeadm-config", http.StatusForbidden},
			{"/api/v1/namespaces/kube-system/configmaps/kubelet-config", http.StatusForbidden},
			{"/api/v1/namespaces/kube-system/secrets", http.StatusForbidden},
			{"/api/v1/namespaces/kube-system/secrets/kubeadm-certs", http.StatusForbidden},
			{"/api/v1/namespaces", http.StatusForbidden},
			{"/api/v1/nodes", http.StatusForbidden},
		} {
			code, body := anonymousGet(t, c.path)
			if code != c.want {
				t.Errorf("anonymous GET %s: %d, want %d: %s", c.path, code, c.want, body)
			}
		}
	})

	// init signs cluster-info for its token itself, so that a node can join the moment init returns; the
	// controller-manager's bootstrapsigner must find the same signature and keep it (checked below, after it has
	// signed a second token).
	var initSig string
	t.Run("init signed cluster-info for the token", func(t *testing.T) {
		var cm corev1.ConfigMap
		if err := kubectl(ctx, &cm, "-n", "kube-public", "get", "configmap", "cluster-info", "-o", "json"); err != nil {
			t.Fatal(err)
		}
		initSig = cm.Data["jws-kubeconfig-"+tokenID]
		if !jws.DetachedTokenIsValid(initSig, cm.Data["kubeconfig"], tokenID, tokenSecret) {
			t.Fatalf("cluster-info's jws-kubeconfig-%s = %q does not verify with the token (keys %v)", tokenID, initSig, keys(cm.Data))
		}
		// The bootstrapsigner writes only when its signatures differ from the ConfigMap's.
		for _, f := range cm.ManagedFields {
			if strings.Contains(f.Manager, "controller-manager") {
				t.Errorf("the controller-manager rewrote cluster-info after init (%s at %v): it disagrees with init's signature", f.Operation, f.Time)
			}
		}
	})

	t.Run("upstream kubeadm lists kubeboot's token", func(t *testing.T) {
		out, err := inNode(ctx, cp1, kubeadm, "token", "list", "--kubeconfig", "/etc/kubernetes/admin.conf")
		if err != nil || !strings.Contains(out, tokenID+".") || !strings.Contains(out, "system:bootstrappers:kubeadm:default-node-token") {
			t.Fatalf("kubeadm token list: %v\n%s", err, out)
		}
	})

	t.Run("kubeboot token create is usable by kubeadm", func(t *testing.T) {
		out, err := inNode(ctx, cp1, kubeboot, "token", "create", "--description", "e2e", "--kubeconfig", "/etc/kubernetes/admin.conf")
		tok := strings.TrimSpace(out)
		if err != nil || !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`).MatchString(tok) {
			t.Fatalf("token create: %q, %v", out, err)
		}
		list, err := inNode(ctx, cp1, kubeadm, "token", "list", "--kubeconfig", "/etc/kubernetes/admin.conf")
		if err != nil || !strings.Contains(list, tok) || !strings.Contains(list, "e2e") {
			t.Fatalf("kubeadm token list does not show %s: %v\n%s", tok[:6], err, list)
		}
		// The controller-manager's bootstrapsigner signs a token made after init too.
		var cm corev1.ConfigMap
		if !poll(ctx, time.Minute, func() bool {
			return kubectl(ctx, &cm, "-n", "kube-public", "get", "configmap", "cluster-info", "-o", "json") == nil && cm.Data["jws-kubeconfig-"+tok[:6]] != ""
		}) {
			t.Fatalf("the controller-manager did not sign cluster-info for the new token %s: keys %v", tok[:6], keys(cm.Data))
		}
		if got := cm.Data["jws-kubeconfig-"+tokenID]; initSig == "" || got != initSig {
			t.Errorf("the bootstrapsigner changed init's signature for %s: %q, init wrote %q", tokenID, got, initSig)
		}
		if out, err := inNode(ctx, cp1, kubeboot, "token", "delete", tok[:6], "--kubeconfig", "/etc/kubernetes/admin.conf"); err != nil {
			t.Fatalf("token delete: %v\n%s", err, out)
		}
	})

	t.Run("certs check-expiration: upstream kubeadm's tables are kubeboot's", func(t *testing.T) { checkExpirationAgrees(t, cp1) })
	t.Run("certs renew all --restart: every component comes back serving its new certificate", func(t *testing.T) { checkRenewRestart(t, cp1, cp1IP) })
	t.Run("security: every private key after certs renew 0600, in directories no other user can list", func(t *testing.T) { checkKeyModes(t, cp1) })
	t.Run("certs renew --if-expires-within: nothing due on a fresh node; auto-renew install and uninstall without systemd name the cron line", func(t *testing.T) {
		before, _ := os.ReadFile(nodeHostPath(cp1, "/etc/kubernetes/pki/apiserver.crt"))
		out, err := inNode(ctx, cp1, kubeboot, "certs", "renew", "all", "--if-expires-within", "720h", "--restart")
		if err != nil || !strings.Contains(out, "[renew] No certificate expires within 720h0m0s: nothing to renew") || strings.Contains(out, "[restart]") {
			t.Errorf("renew --if-expires-within 720h on a fresh node: %v\n%s", err, out)
		}
		if after, _ := os.ReadFile(nodeHostPath(cp1, "/etc/kubernetes/pki/apiserver.crt")); string(after) != string(before) {
			t.Error("apiserver.crt changed although nothing was due")
		}
		out, err = inNode(ctx, cp1, kubeboot, "certs", "auto-renew", "install")
		if err != nil || !strings.Contains(out, "does not run systemd") || !strings.Contains(out, kubeboot+" certs renew all --if-expires-within 720h") {
			t.Errorf("auto-renew install in a node without systemd: %v\n%s", err, out)
		}
		out, err = inNode(ctx, cp1, kubeboot, "certs", "auto-renew", "uninstall")
		if err != nil || !strings.Contains(out, "does not run systemd") || !strings.Contains(out, "from root's crontab") {
			t.Errorf("auto-renew uninstall in a node without systemd: %v\n%s", err, out)
		}
	})
	t.Run("upgrade within the release: plan by both tools, apply by kubeboot and by upstream kubeadm, node on the worker", func(t *testing.T) {
		checkUpgradeSameRelease(t, cp1, "kblab-w1")
	})
	t.Run("upgrade rollback: a kube-apiserver that cannot start is put back within the timeout, the cluster healthy", func(t *testing.T) {
		checkUpgradeRollback(t, cp1)
	})

	t.Run("init twice is refused and the cluster keeps running", func(t *testing.T) {
		out, err := inNode(ctx, cp1, kubeboot, "init", "--config", initConfig)
		if err == nil {
			t.Fatalf("a second init succeeded:\n%s", out)
		}
		for _, want := range []string{"[ERROR Port-6443]", "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]", "--ignore-preflight-errors="} {
			if !strings.Contains(out, want) {
				t.Errorf("second init output lacks %q:\n%s", want, out)
			}
		}
		if code, body := anonymousGet(t, "/readyz"); code != http.StatusOK {
			t.Errorf("API not ready after the refused init: %d %s", code, body)
		}
	})

	// From here on the node is reset: the checks above must come first.
	// What is on the node once reset is done and the lab's supervisor has stopped the kubelet: the refused inits
	// below must add nothing to it.
	var afterReset string
	t.Run("reset empties the node", func(t *testing.T) {
		start := time.Now()
		// The upgrade row left kubeadm's backups in /etc/kubernetes/tmp, which reset keeps unless told.
		out, err := inNode(ctx, cp1, kubeboot, "reset", "-f", "--cleanup-tmp-dir")
		t.Logf("reset:\n%s", out)
		if err != nil {
			t.Fatalf("reset: %v", err)
		}
		// Without an init system reset cannot stop the kubelet, which may write its state files (dra_manager_state)
		// again before the supervisor stops it. Reset answers for the files that existed before it started.
		waitKubeletStopped(t, cp1)
		var left, rewritten []string
		for f, mtime := range nodeFileTimes(t) {
			if mtime.Before(start) {
				left = append(left, f)
			} else {
				rewritten = append(rewritten, f)
			}
		}
		if len(left) > 0 {
			t.Fatalf("files left after reset: %v", left)
		}
		if len(rewritten) > 0 {
			t.Logf("written by the kubelet after reset started (no init system stops it in the lab): %v", rewritten)
		}
		afterReset = nodeFiles(t)
		if !strings.Contains(out, "The reset process does not clean up") || !strings.Contains(out, "/etc/cni/net.d") {
			t.Errorf("reset does not say what it left")
		}
	})

	t.Run("port in use: clear preflight error, nothing written", func(t *testing.T) {
		out, err := inNode(ctx, cp1, "sh", "-c", "socat TCP-LISTEN:6443,reuseaddr,fork /dev/null & pid=$!; sleep 0.3; "+kubeboot+" init --config "+initConfig+"; rc=$?; kill $pid; exit $rc")
		if err == nil || !strings.Contains(out, "[ERROR Port-6443]: port 6443 is in use") {
			t.Fatalf("init with 6443 taken: %v\n%s", err, out)
		}
		if files := nodeFiles(t); files != afterReset {
			t.Fatalf("a refused init changed the node's files:\n%s\nbefore it:\n%s", files, afterReset)
		}
	})

	t.Run("missing images with pull policy Never: error names the image, nothing written", func(t *testing.T) {
		bad := strings.Replace(string(b), "kind: ClusterConfiguration\n", "kind: ClusterConfiguration\nimageRepository: registry.invalid.example\n", 1)
		if bad == string(b) || !strings.Contains(bad, "imagePullPolicy: Never") {
			t.Fatalf("cannot derive the bad config from:\n%s", b)
		}
		badFile := filepath.Join(nodeDir(cp1), "bad-image-repository.yaml")
		if err := os.WriteFile(badFile, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := inNode(ctx, cp1, kubeboot, "init", "--config", badFile)
		if err == nil || !strings.Contains(out, "[ERROR ImagePull]: image registry.invalid.example/kube-apiserver:"+release.DefaultVersion()+" is not present") {
			t.Fatalf("init with a missing image: %v\n%s", err, out)
		}
		if files := nodeFiles(t); files != afterReset {
			t.Fatalf("a refused init changed the node's files:\n%s\nbefore it:\n%s", files, afterReset)
		}
	})

	t.Run("etcd not starting during init: the error names etcd with its container state and log; reset empties the node", func(t *testing.T) {
		waitKubeletStopped(t, cp1)
		checkInitEtcdFails(t, b)
	})

	t.Run("disk full under /etc/kubernetes during init: the error names the file, no file half-written; reset empties the node", func(t *testing.T) {
		waitKubeletStopped(t, cp1)
		checkInitDiskFull(t, initConfig)
	})

	// Issue 19's fault table: init interrupted while it writes the node's files, and while it waits for the control
	// plane; reset then empties the node, and the next row's init works.
	t.Run("SIGINT to init right after preflight: it stops naming the signal and the phase; reset empties the node", func(t *testing.T) {
		waitKubeletStopped(t, cp1)
		checkInitInterrupted(t, initConfig, syscall.SIGINT, "[preflight] done")
	})
	t.Run("SIGTERM to init during wait-control-plane: it stops naming the signal and the phase; reset empties the node", func(t *testing.T) {
		waitKubeletStopped(t, cp1)
		checkInitInterrupted(t, initConfig, syscall.SIGTERM, "waiting for the kubelet and the control plane")
	})

	t.Run("init again after reset, with addon patches; wall time next to upstream kubeadm", func(t *testing.T) {
		// Preflight needs port 10250 free: the reset kubelet must have stopped.
		waitKubeletStopped(t, cp1)
		// The addons' patch targets (kubeadm 1.37 adds kubeproxydaemonset): both tools must apply them.
		addonPatches := map[string]string{"corednsdeployment+merge.yaml": "deployment/coredns", "kubeproxydaemonset+merge.yaml": "daemonset/kube-proxy"}
		for file := range addonPatches {
			target, _, _ := strings.Cut(file, "+")
			body := fmt.Sprintf("metadata:\n  annotations:\n    e2e.kubeboot.dev/patched: %s\n", target)
			if err := os.WriteFile(filepath.Join(nodeDir(cp1), "patches", file), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		checkAddonPatches := func(t *testing.T, tool string) {
			t.Helper()
			for file, object := range addonPatches {
				target, _, _ := strings.Cut(file, "+")
				out, err := lab(ctx, "kubectl", "-n", "kube-system", "get", object, "-o", `jsonpath={.metadata.annotations.e2e\.kubeboot\.dev/patched}`)
				if err != nil || strings.TrimSpace(out) != target {
					t.Errorf("after %s init, %s carries patched=%q (err %v); want %q from patches/%s", tool, object, strings.TrimSpace(out), err, target, file)
				}
			}
		}
		kb := initRefusingASecond(t, initConfig)
		if code, body := anonymousGet(t, "/readyz"); code != http.StatusOK {
			t.Fatalf("API not ready after init again: %d %s", code, body)
		}
		checkAddonPatches(t, "kubeboot")
		if out, err := inNode(ctx, cp1, kubeboot, "reset", "-f"); err != nil {
			t.Fatalf("reset: %v\n%s", err, out)
		}
		waitKubeletStopped(t, cp1)
		ka := timed(t, kubeadm, "init", "--config", initConfig)
		checkAddonPatches(t, "upstream kubeadm")
		t.Logf("FIGURE init wall time on %s, same config, same run: kubeboot %s, upstream kubeadm %s (ratio %.2f)",
			cp1, kb.Round(10*time.Millisecond), ka.Round(10*time.Millisecond), float64(kb)/float64(ka))
	})
}

// initRefusingASecond runs kubeboot init on cp1 and, while it runs, a second one, which the node lock must refuse
// naming the first; the first must finish as if alone. It returns the first's wall time.
func initRefusingASecond(t *testing.T, initConfig string) time.Duration {
	t.Helper()
	ctx := t.Context()
	type result struct {
		out string
		err error
		d   time.Duration
	}
	done := make(chan result, 1)
	lockFile := nodeHostPath(cp1, "/var/lib/kubeboot/node.lock")
	// The file outlives its holders (the lock is a flock): an earlier command's record is still in it.
	stale, _ := os.ReadFile(lockFile)
	start := time.Now()
	go func() {
		out, err := inNode(ctx, cp1, kubeboot, "init", "--config", initConfig)
		done <- result{out, err, time.Since(start)}
	}()
	var holder string
	if !poll(ctx, 30*time.Second, func() bool {
		b, _ := os.ReadFile(lockFile)
		holder = string(b)
		return holder != string(stale) && strings.Contains(holder, `"kubeboot init"`)
	}) {
		r := <-done
		t.Fatalf("the first init never held the node lock (%s: %q); init: %v\n%s", lockFile, holder, r.err, r.out)
	}
	second, err := inNode(ctx, cp1, kubeboot, "init", "--config", initConfig)
	first := <-done
	if first.err != nil {
		t.Fatalf("the first init, beside a second one: %v\n%s", first.err, first.out)
	}
	if err == nil || !strings.Contains(second, "another kubeboot is changing this node") || !strings.Contains(second, strings.TrimSpace(holder)) {
		t.Fatalf("the second init while the first held the lock (%q): %v, want a refusal naming the first:\n%s", holder, err, second)
	}
	t.Logf("second init refused while the first ran:\n%s", second)
	return first.d
}

// timed runs a bootstrapper inside the control-plane node and returns its wall time.
func timed(t *testing.T, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	out, err := inNode(t.Context(), cp1, args...)
	d := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return d
}

// nodeFileTimes lists the files under the control-plane node's /etc/kubernetes, /var/lib/kubelet and
// /var/lib/etcd with their modification times.
func nodeFileTimes(t *testing.T) map[string]time.Time {
	t.Helper()
	return fileTimes(t, cp1, "/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd")
}

// fileTimes maps each file under the node's dirs to its modification time.
func fileTimes(t *testing.T, node string, dirs ...string) map[string]time.Time {
	t.Helper()
	out, err := inNode(t.Context(), node, append(append([]string{"find"}, dirs...), "-type", "f", "-printf", "%T@ %p\n")...)
	if err != nil {
		t.Fatalf("find on %s: %v\n%s", node, err, out)
	}
	files := map[string]time.Time{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		stamp, name, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		secs, err := strconv.ParseFloat(stamp, 64)
		if err != nil {
			t.Fatalf("find printed %q: %v", l, err)
		}
		files[name] = time.Unix(0, int64(secs*1e9))
	}
	return files
}

// nodeFiles lists the files under the control-plane node's /etc/kubernetes and /var/lib/kubelet.
func nodeFiles(t *testing.T) string {
	t.Helper()
	out, err := inNode(t.Context(), cp1, "find", "/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "-type", "f")
	if err != nil {
		t.Fatalf("find: %v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// anonymousGet sends an unauthenticated request to the control plane's API server from the machine (the lab's
// bridge reaches the nodes' addresses).
func anonymousGet(t *testing.T, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // anonymous probe of a lab API server
		Proxy:           nil,
	}}
	resp, err := client.Get(fmt.Sprintf("https://%s:6443%s", cp1IP, path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body)
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
