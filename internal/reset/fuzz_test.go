package reset

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// FuzzReadEtcdManifest feeds etcd.yaml to ReadEtcdManifest, from which reset learns the member to remove and the
// data directory to delete. What it reads must name a clean absolute data directory (reset deletes it) or be an
// error.
func FuzzReadEtcdManifest(f *testing.F) {
	files, err := filepath.Glob("../manifests/testdata/golden/*/etcd.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden etcd manifests: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("spec:\n  containers:\n  - command: [etcd]\n  volumes:\n  - name: etcd-data\n    hostPath: {path: ../../x/}\n"))
	f.Add([]byte("spec:\n  volumes:\n  - name: etcd-data\n    hostPath: {path: /var/lib/etcd}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := nodefs.Memory()
		if err := fsys.WriteFile(staticpod.Path(staticpod.EtcdName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := ReadEtcdManifest(fsys)
		if err != nil {
			if m != nil {
				t.Fatalf("ReadEtcdManifest returned a member and the error %v", err)
			}
			return
		}
		if m == nil {
			t.Fatal("ReadEtcdManifest of an existing file returned neither a member nor an error")
		}
		if m.DataDir == "" || m.DataDir != path.Clean(m.DataDir) {
			t.Fatalf("data directory %q", m.DataDir)
		}
		for _, list := range [][]string{m.InitialCluster, m.ClientURLs, m.AdvertiseClientURLs, m.PeerURLs} {
			for _, s := range list {
				if s == "" || s != strings.TrimSpace(s) {
					t.Fatalf("list element %q", s)
				}
			}
		}
	})
}

// FuzzParseMountInfo feeds /proc/self/mountinfo to ParseMountInfo, from which reset finds what to unmount under
// the kubelet's directory: one mount point per line, unescaped.
func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" +
		"100 22 0:50 / /var/lib/kubelet/pods/x/volumes/kubernetes.io~projected/kube-api-access\\040x rw - tmpfs tmpfs rw\n"))
	f.Add([]byte("1 2 3 4\n"))
	f.Add([]byte("1 2 3 4 \\777\\\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		points, err := ParseMountInfo(data)
		if err != nil {
			if points != nil {
				t.Fatalf("ParseMountInfo returned %q and the error %v", points, err)
			}
			return
		}
		if lines := strings.Count(string(data), "\n") + 1; len(points) > lines {
			t.Fatalf("%d mount points from %d lines", len(points), lines)
		}
	})
}
