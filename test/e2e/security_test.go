//go:build e2e

package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
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
