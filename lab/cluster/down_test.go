package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKeepLogsKeepsNodeAndPodLogs(t *testing.T) {
	state := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(NodesDir(state), rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kblab-cp1/logs/kubelet.log", "kubelet")
	write("kblab-cp1/root/var/log/pods/kube-system_etcd-kblab-cp1_1/etcd/0.log", "etcd")
	write("kblab-w1/root/var/log/pods/kube-system_kube-proxy-x_2/kube-proxy/0.log", "proxy") // no node logs

	if err := keepLogs(state); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"kblab-cp1/kubelet.log":                                     "kubelet",
		"kblab-cp1/pods/kube-system_etcd-kblab-cp1_1/etcd/0.log":    "etcd",
		"kblab-w1/pods/kube-system_kube-proxy-x_2/kube-proxy/0.log": "proxy",
	} {
		got, err := os.ReadFile(filepath.Join(LastLogsDir(state), rel))
		if err != nil || string(got) != want {
			t.Errorf("last-logs/%s = %q, %v; want %q", rel, got, err, want)
		}
	}
}
