//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	snapshotFile    = "/var/lib/kubeboot/e2e-snapshot.tar.gz"
	snapshotObjects = 500
	snapLabel       = "e2e-snap"
)

// checkSnapshotRestoreHA is issue 17's HA proof on TestHA's kubeboot cluster: 500 ConfigMaps and a Deployment are
// saved with `etcd snapshot save` on cp1, then deleted and replaced by other objects; a restore while the other
// members run is refused; with their etcd stopped, cp1 restores and cp2 and cp3 rejoin. The saved objects are back,
// the later ones gone, and the cluster is whole.
func checkSnapshotRestoreHA(t *testing.T, kubeconfig, otherArchive string) {
	ctx := t.Context()
	cp1, cp2, cp3 := haControlPlanes[0], haControlPlanes[1], haControlPlanes[2]
	cs := clientFor(t, kubeconfig)

	createConfigMaps(t, cs, "e2e-snap-before", snapshotObjects, "before")
	replicas := int32(2)
	labels := map[string]string{"app": "e2e-snap"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-snap", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "sleep", Image: "kubeboot.lab/busybox:1", ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Deployment e2e-snap: %v", err)
	}
	waitPodsRunning(t, cs, "app=e2e-snap", 2)

	start := time.Now()
	out, err := inNode(ctx, cp1.name, kubeboot, "etcd", "snapshot", "save", snapshotFile)
	took := time.Since(start)
	t.Logf("kubeboot etcd snapshot save on %s (%s):\n%s", cp1.name, took.Round(10*time.Millisecond), out)
	if err != nil {
		t.Fatalf("etcd snapshot save: %v", err)
	}
	fi, err := os.Stat(nodeHostPath(cp1.name, snapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s is %v, want 0600", snapshotFile, fi.Mode().Perm())
	}
	t.Logf("FIGURE etcd snapshot save on an HA cluster with %d+ ConfigMaps: %s, %d bytes", snapshotObjects, took.Round(10*time.Millisecond), fi.Size())

	// Lose the saved objects, and make others that the restore must take away.
	if err := cs.CoreV1().ConfigMaps("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: snapLabel + "=before"}); err != nil {
		t.Fatalf("delete the ConfigMaps: %v", err)
	}
	if err := cs.AppsV1().Deployments("default").Delete(ctx, "e2e-snap", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete the Deployment: %v", err)
	}
	createConfigMaps(t, cs, "e2e-snap-after", 20, "after")
	if n := countConfigMaps(t, cs, "before"); n != 0 {
		t.Fatalf("%d saved ConfigMaps left after deleting them", n)
	}

	// nothingStopped: after a refused restore, etcd's manifest is in place and the API serves the objects of now.
	nothingStopped := func(t *testing.T) {
		t.Helper()
		if _, err := os.Stat(nodeHostPath(cp1.name, "/etc/kubernetes/manifests/etcd.yaml")); err != nil {
			t.Errorf("the refused restore moved etcd's manifest: %v", err)
		}
		if n := countConfigMaps(t, cs, "after"); n != 20 {
			t.Errorf("after the refused restore the API lists %d of the 20 later ConfigMaps", n)
		}
	}
	t.Run("refused: a snapshot of another cluster (upstream kubeadm's, saved by kubeboot), nothing stopped", func(t *testing.T) {
		b, err := os.ReadFile(otherArchive)
		if err != nil {
			t.Skipf("no archive of TestHA/kubeadm's cluster (%v): this row needs TestHA run whole", err)
		}
		const other = "/var/lib/kubeboot/e2e-other-cluster.tar.gz"
		if err := os.WriteFile(nodeHostPath(cp1.name, other), b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := inNode(ctx, cp1.name, kubeboot, "etcd", "snapshot", "restore", other)
		if err == nil || !strings.Contains(out, "refusing to restore, nothing was changed") || !strings.Contains(out, "snapshot of another cluster") || !strings.Contains(out, "--force") {
			t.Fatalf("restore of another cluster's archive: %v, want a refusal naming another cluster and --force:\n%s", err, out)
		}
		t.Logf("refused:\n%s", out)
		nothingStopped(t)
	})
	t.Run("refused: restore while the other members run (split brain), nothing stopped", func(t *testing.T) {
		out, err := inNode(ctx, cp1.name, kubeboot, "etcd", "snapshot", "restore", snapshotFile)
		if err == nil || !strings.Contains(out, cp2.name) || !strings.Contains(out, cp3.name) {
			t.Fatalf("restore with cp2 and cp3 running: %v, want a refusal naming both:\n%s", err, out)
		}
		t.Logf("refused:\n%s", out)
		nothingStopped(t)
	})

	// The other members stop, as `restore` asks: their manifests leave the kubelet's directory.
	for _, cp := range []struct{ name, ip string }{cp2, cp3} {
		if out, err := inNode(ctx, cp.name, "mv", "/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/etcd.yaml.stopped"); err != nil {
			t.Fatalf("stop etcd on %s: %v\n%s", cp.name, err, out)
		}
	}
	for _, cp := range []struct{ name, ip string }{cp2, cp3} {
		if !poll(ctx, 2*time.Minute, func() bool { return !listening(cp.ip + ":2379") }) {
			t.Fatalf("etcd of %s still listens 2m after its manifest left", cp.name)
		}
	}

	start = time.Now()
	out, err = inNode(ctx, cp1.name, kubeboot, "etcd", "snapshot", "restore", snapshotFile)
	t.Logf("kubeboot etcd snapshot restore on %s (%s):\n%s", cp1.name, time.Since(start).Round(10*time.Millisecond), out)
	if err != nil {
		t.Fatalf("etcd snapshot restore: %v", err)
	}
	t.Logf("FIGURE etcd snapshot restore on cp1, to etcd and the API server ready: %s", time.Since(start).Round(10*time.Millisecond))
	for _, cp := range []struct{ name, ip string }{cp2, cp3} {
		start := time.Now()
		out, err := inNode(ctx, cp.name, kubeboot, "etcd", "snapshot", "rejoin", "--endpoints", "https://"+cp1.ip+":2379")
		t.Logf("kubeboot etcd snapshot rejoin on %s (%s):\n%s", cp.name, time.Since(start).Round(10*time.Millisecond), out)
		if err != nil {
			t.Fatalf("etcd snapshot rejoin on %s: %v", cp.name, err)
		}
	}

	checkMembers(t, etcdMembers(t, cp2.name), cp1, cp2, cp3)
	t.Run("security: every private key of the restored and rejoined control planes 0600, in directories no other user can list", func(t *testing.T) {
		for _, cp := range haControlPlanes {
			checkKeyModes(t, cp.name)
		}
	})
	if n := countConfigMaps(t, cs, "before"); n != snapshotObjects {
		t.Errorf("%d of the %d saved ConfigMaps are back", n, snapshotObjects)
	}
	if n := countConfigMaps(t, cs, "after"); n != 0 {
		t.Errorf("%d ConfigMaps made after the snapshot survived the restore", n)
	}
	if _, err := cs.AppsV1().Deployments("default").Get(ctx, "e2e-snap", metav1.GetOptions{}); err != nil {
		t.Errorf("the saved Deployment is not back: %v", err)
	}
	waitPodsRunning(t, cs, "app=e2e-snap", 2)
	waitControlPlaneReady(t)
	// A rejoined control plane's kubelet reported through its own API server, which had no etcd until the rejoin:
	// its Node may be NodeStatusUnknown for a while after (seen: cp3, "Kubelet stopped posting node status").
	waitNodesReady(t, 3*time.Minute, cp1.name, cp2.name, cp3.name, haWorker)
	checkDNSAndServiceIP(t, haWorker)
	if out, err := lab(ctx, "kubectl", "delete", "pod", "e2e-probe", "--wait=false"); err != nil {
		t.Errorf("delete the probe Pod: %v\n%s", err, out)
	}
}

// createConfigMaps creates n ConfigMaps named prefix-i, labelled e2e-snap=value, 8 at a time.
func createConfigMaps(t *testing.T, cs kubernetes.Interface, prefix string, n int, value string) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: "default",
					Labels: map[string]string{snapLabel: value}}, Data: map[string]string{"i": fmt.Sprint(i)}}
				if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d ConfigMaps %s-* not created, first: %s", len(errs), n, prefix, errs[0])
	}
}

func countConfigMaps(t *testing.T, cs kubernetes.Interface, value string) int {
	t.Helper()
	var list *corev1.ConfigMapList
	var err error
	if !poll(t.Context(), time.Minute, func() bool {
		list, err = cs.CoreV1().ConfigMaps("default").List(t.Context(), metav1.ListOptions{LabelSelector: snapLabel + "=" + value})
		return err == nil
	}) {
		t.Fatalf("list the ConfigMaps %s=%s: %v", snapLabel, value, err)
	}
	return len(list.Items)
}

// waitPodsRunning waits until exactly n Pods matching selector in default run, and no other is pending or unknown:
// terminated ones (Failed, Succeeded) may remain, and are logged.
func waitPodsRunning(t *testing.T, cs kubernetes.Interface, selector string, n int) {
	t.Helper()
	var last string
	var ended []string
	if !poll(t.Context(), 3*time.Minute, func() bool {
		pods, err := cs.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			last = err.Error()
			return false
		}
		running, others := 0, 0
		var states []string
		ended = ended[:0]
		for _, p := range pods.Items {
			states = append(states, fmt.Sprintf("%s %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName))
			switch {
			case p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil:
				running++
			case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
				// A Pod the snapshot holds whose containers the kubelet removed after the snapshot comes back
				// terminated: the kubelet never restarts a Pod it has terminated, and the ReplicaSet replaces it.
				ended = append(ended, fmt.Sprintf("%s %s (%s: %s)", p.Name, p.Status.Phase, p.Status.Reason, p.Status.Message))
			default:
				others++
			}
		}
		last = strings.Join(states, "; ")
		return running == n && others == 0
	}) {
		t.Fatalf("%s: not %d Pods Running after 3m: %s", selector, n, last)
	}
	if len(ended) > 0 {
		t.Logf("%s: %d Pods Running, and %d terminated ones: %s", selector, n, len(ended), strings.Join(ended, "; "))
	}
}

// listening says whether something accepts TLS connections at addr.
func listening(addr string) bool {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reachability
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// The disaster row's files; /var/lib/kubeboot is node-private and reset leaves it.
const (
	disasterKey = "/var/lib/kubeboot/e2e-snapshot.key"
	disasterDir = "/var/lib/kubeboot/e2e-scheduled"
)

// checkDisasterRebuild is issue 17's disaster proof on TestKubebootJoin's cluster (one control plane, kubeboot's,
// and workers). The archives are the scheduled ones: `etcd snapshot schedule --keep 2` with an encryption key
// prints, on a node without systemd, the cron line, whose command runs three times; the two newest archives stay.
// Then the control plane's machine is wiped with `kubeboot reset` (its PKI, kubeconfig files, manifests, kubelet
// settings and /var/lib/etcd gone); a truncated archive, the wrong key and a full disk are refused with the machine
// untouched; and the control plane is rebuilt from the newest archive alone with this machine's
// InitConfiguration. The worker is Ready again without joining anew, and a Pod on it kept running throughout: a
// file written into its container before the wipe is still there after.
func checkDisasterRebuild(t *testing.T, worker string) {
	ctx := t.Context()
	pod := runningPodOn(t, "app=e2e-web", worker)
	marker := fmt.Sprintf("written before the wipe at %s", time.Now().Format(time.RFC3339Nano))
	if out, err := lab(ctx, "kubectl", "exec", pod.Name, "--", "sh", "-c", "echo '"+marker+"' > /tmp/e2e-marker"); err != nil {
		t.Fatalf("write the marker into %s: %v\n%s", pod.Name, err, out)
	}

	key, err := inNode(ctx, cp1, kubeboot, "certs", "certificate-key")
	if err != nil {
		t.Fatalf("kubeboot certs certificate-key: %v\n%s", err, key)
	}
	if err := os.WriteFile(nodeHostPath(cp1, disasterKey), []byte(strings.TrimSpace(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	save := scheduledSave(t, cp1)
	var disasterFile string
	t.Run("scheduled saves: the cron line's command, run three times, keeps the two newest archives, encrypted and 0600", func(t *testing.T) {
		for i := range 3 {
			if i == 2 {
				// The last save holds an object the others do not.
				if out, err := lab(ctx, "kubectl", "create", "configmap", "e2e-disaster-before", "--from-literal=saved=yes"); err != nil {
					t.Fatalf("create ConfigMap e2e-disaster-before: %v\n%s", err, out)
				}
			}
			start := time.Now()
			out, err := inNode(ctx, cp1, "sh", "-c", save)
			if err != nil {
				t.Fatalf("the scheduled command (%s): %v\n%s", save, err, out)
			}
			t.Logf("scheduled save %d (%s)", i+1, time.Since(start).Round(10*time.Millisecond))
			time.Sleep(1100 * time.Millisecond) // archives are named by the second
		}
		entries, err := os.ReadDir(nodeHostPath(cp1, disasterDir))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s/%s is %v, want 0600", disasterDir, e.Name(), fi.Mode().Perm())
			}
		}
		if len(names) != 2 {
			t.Fatalf("%s holds %q after three saves with --keep 2, want the two newest", disasterDir, names)
		}
		disasterFile = filepath.Join(disasterDir, names[1]) // sorted by name, that is by time
		if out, err := inNode(ctx, cp1, kubeboot, "etcd", "snapshot", "verify", disasterFile); err == nil {
			t.Errorf("verify without the key passed: the archive is not encrypted:\n%s", out)
		}
		out, err := inNode(ctx, cp1, kubeboot, "etcd", "snapshot", "verify", disasterFile, "--encryption-key-file", disasterKey)
		if err != nil {
			t.Fatalf("verify %s with the key: %v\n%s", disasterFile, err, out)
		}
		t.Logf("kubeboot etcd snapshot verify %s:\n%s", disasterFile, out)
	})
	if disasterFile == "" {
		t.FailNow()
	}
	// A plain archive too, for the truncation row: an encrypted one that is cut short fails its authentication
	// like a wrong key.
	const plainFile = "/var/lib/kubeboot/e2e-plain.tar.gz"
	if out, err := inNode(ctx, cp1, kubeboot, "etcd", "snapshot", "save", plainFile); err != nil {
		t.Fatalf("etcd snapshot save %s: %v\n%s", plainFile, err, out)
	}

	if out, err := inNode(ctx, cp1, kubeboot, "reset", "-f"); err != nil {
		t.Fatalf("kubeboot reset on %s: %v\n%s", cp1, err, out)
	}
	for _, p := range []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/admin.conf", "/etc/kubernetes/manifests/etcd.yaml", "/var/lib/etcd/member", "/var/lib/kubelet/config.yaml"} {
		if _, err := os.Stat(nodeHostPath(cp1, p)); !os.IsNotExist(err) {
			t.Fatalf("after reset %s is still on %s (%v): the machine is not wiped", p, cp1, err)
		}
	}
	if !poll(ctx, time.Minute, func() bool { return !listening(cp1IP + ":6443") }) {
		t.Fatalf("the API server of %s still answers a minute after reset", cp1)
	}
	// The kubelet checkpoints its state into /var/lib/kubelet on its way out: the refusal rows compare that
	// directory before and after, so it must have stopped first (CI once saw the first row fail in 0.3 s).
	waitKubeletStopped(t, cp1)

	// This machine's own part of init's configuration: the InitConfiguration the lab's init used.
	initFile := filepath.Join(nodeDir(cp1), "e2e-rebuild-init.yaml")
	if err := os.WriteFile(initFile, initDocument(t, filepath.Join(nodeDir(cp1), "kubeboot-init.yaml")), 0o600); err != nil {
		t.Fatal(err)
	}

	// refusedRebuild runs a rebuild that must be refused with want, leaving the wiped machine as it is.
	refusedRebuild := func(t *testing.T, want string, args ...string) {
		t.Helper()
		before := filesOf(t, cp1)
		out, err := inNode(ctx, cp1, append([]string{kubeboot, "etcd", "snapshot", "restore", "--config", initFile}, args...)...)
		if err == nil || !strings.Contains(out, "refusing to restore, nothing was changed") || !strings.Contains(out, want) {
			t.Fatalf("kubeboot etcd snapshot restore %q: %v, want a refusal with %q:\n%s", args, err, want, out)
		}
		t.Logf("refused:\n%s", out)
		if after := filesOf(t, cp1); after != before {
			t.Errorf("the refused rebuild wrote on %s:\nbefore:\n%s\nafter:\n%s", cp1, before, after)
		}
		if _, err := os.Stat(nodeHostPath(cp1, "/var/lib/etcd/member")); !os.IsNotExist(err) {
			t.Errorf("the refused rebuild made an etcd data directory (%v)", err)
		}
	}
	t.Run("refused: a truncated archive, the machine untouched", func(t *testing.T) {
		data, err := os.ReadFile(nodeHostPath(cp1, plainFile))
		if err != nil {
			t.Fatal(err)
		}
		const truncated = "/var/lib/kubeboot/e2e-truncated.tar.gz"
		if err := os.WriteFile(nodeHostPath(cp1, truncated), data[:len(data)*2/3], 0o600); err != nil {
			t.Fatal(err)
		}
		refusedRebuild(t, "corrupt or truncated", truncated)
	})
	t.Run("refused: the archive with another key, the machine untouched", func(t *testing.T) {
		const wrongKey = "/var/lib/kubeboot/e2e-wrong.key"
		if err := os.WriteFile(nodeHostPath(cp1, wrongKey), []byte(strings.Repeat("0f", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		refusedRebuild(t, "the encryption key does not decrypt the archive", disasterFile, "--encryption-key-file", wrongKey)
	})
	t.Run("refused: no room for the etcd data directory (a 64 KiB tmpfs on /var/lib/etcd), the machine untouched", func(t *testing.T) {
		if out, err := inNode(ctx, cp1, "mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "kblab-e2e-full", "/var/lib/etcd"); err != nil {
			t.Fatalf("mount a small tmpfs on cp1's /var/lib/etcd: %v\n%s", err, out)
		}
		defer func() {
			if out, err := inNode(context.WithoutCancel(ctx), cp1, "umount", "/var/lib/etcd"); err != nil {
				t.Errorf("umount cp1's /var/lib/etcd: %v\n%s", err, out)
			}
		}()
		// The fault is in place: the data directory's filesystem is the small tmpfs.
		if out, err := inNode(ctx, cp1, "df", "--output=fstype,size", "/var/lib/etcd"); err != nil || !strings.Contains(out, "tmpfs") {
			t.Fatalf("cp1's /var/lib/etcd is not the small tmpfs (%v):\n%s", err, out)
		}
		refusedRebuild(t, "not enough free disk space under /var/lib/etcd", disasterFile, "--encryption-key-file", disasterKey)
	})

	start := time.Now()
	out, err := inNode(ctx, cp1, kubeboot, "etcd", "snapshot", "restore", disasterFile, "--config", initFile, "--encryption-key-file", disasterKey)
	took := time.Since(start)
	t.Logf("kubeboot etcd snapshot restore on the wiped %s (%s):\n%s", cp1, took.Round(10*time.Millisecond), out)
	if err != nil {
		t.Fatalf("rebuild from the archive: %v", err)
	}
	t.Logf("FIGURE control plane rebuilt from an archive alone on a wiped machine, to the control plane healthy: %s", took.Round(10*time.Millisecond))

	checkMembers(t, etcdMembers(t, cp1), struct{ name, ip string }{cp1, cp1IP})
	t.Run("security: every private key of the rebuilt control plane 0600, in directories no other user can list", func(t *testing.T) { checkKeyModes(t, cp1) })
	checkNodesReady(t, cp1, "kblab-w1", "kblab-w2")
	waitControlPlaneReady(t)
	var cm corev1.ConfigMap
	if err := kubectl(ctx, &cm, "get", "configmap", "e2e-disaster-before", "-o", "json"); err != nil || cm.Data["saved"] != "yes" {
		t.Errorf("the saved ConfigMap is not back: %v %v", err, cm.Data)
	}
	after := runningPodOn(t, "app=e2e-web", worker)
	if after.UID != pod.UID {
		t.Errorf("the Pod on %s is %s (%s) after the rebuild, was %s (%s): it did not keep running", worker, after.Name, after.UID, pod.Name, pod.UID)
	}
	got, err := lab(ctx, "kubectl", "exec", pod.Name, "--", "cat", "/tmp/e2e-marker")
	if err != nil || strings.TrimSpace(got) != marker {
		t.Errorf("the marker in %s after the rebuild: %q, %v; want %q: its container did not keep running", pod.Name, got, err, marker)
	}
	for _, c := range after.Status.ContainerStatuses {
		if c.RestartCount != 0 {
			t.Errorf("container %s of %s restarted %d times", c.Name, after.Name, c.RestartCount)
		}
	}
	// The probe Pod of an earlier check came back with the snapshot; a new one goes on this worker.
	if out, err := lab(ctx, "kubectl", "delete", "pod", "e2e-probe", "--ignore-not-found"); err != nil {
		t.Fatalf("delete the earlier probe Pod: %v\n%s", err, out)
	}
	checkDNSAndServiceIP(t, worker)
}

// runningPodOn is a Running Pod in default matching selector on node (the first by name).
func runningPodOn(t *testing.T, selector, node string) corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	if !poll(t.Context(), 2*time.Minute, func() bool {
		var pods corev1.PodList
		if err := kubectl(t.Context(), &pods, "get", "pods", "-l", selector, "--field-selector", "spec.nodeName="+node, "-o", "json"); err != nil {
			return false
		}
		for i, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && (found == nil || p.Name < found.Name) {
				found = &pods.Items[i]
			}
		}
		return found != nil
	}) {
		t.Fatalf("no Running Pod %s on %s", selector, node)
	}
	return *found
}

// initDocument is the InitConfiguration document of a kubeadm configuration file.
func initDocument(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		if strings.Contains(doc, "\nkind: InitConfiguration") || strings.HasPrefix(doc, "kind: InitConfiguration") {
			return []byte(doc + "\n")
		}
	}
	t.Fatalf("%s has no InitConfiguration:\n%s", file, b)
	return nil
}

// scheduledSave is the command of the cron line that `etcd snapshot schedule` prints on node (which has no
// systemd) for saves into disasterDir every hour, two kept, encrypted with disasterKey.
func scheduledSave(t *testing.T, node string) string {
	t.Helper()
	out, err := inNode(t.Context(), node, kubeboot, "etcd", "snapshot", "schedule", disasterDir, "--every", "1h", "--keep", "2", "--encryption-key-file", disasterKey)
	if err != nil {
		t.Fatalf("kubeboot etcd snapshot schedule: %v\n%s", err, out)
	}
	if _, err := os.Stat(nodeHostPath(node, "/run/systemd/system")); err == nil {
		t.Fatalf("%s runs systemd: this row expects the cron line", node)
	}
	m := regexp.MustCompile(`(?m)^\S+ \S+ \* \* \* root (.*etcd snapshot save .*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kubeboot etcd snapshot schedule printed no hourly cron line for root:\n%s", out)
	}
	for _, want := range []string{disasterDir, "--keep 2", "--encryption-key-file " + disasterKey} {
		if !strings.Contains(m[1], want) {
			t.Errorf("the cron line's command lacks %q: %s", want, m[1])
		}
	}
	t.Logf("kubeboot etcd snapshot schedule on %s:\n%s", node, out)
	return m[1]
}
