// Package labbin finds the upstream binaries the lab builds (etcd, kubeadm), for unit tests that compare with or
// run them. The product never needs them; tests that do use Require.
package labbin

import (
	"os"
	"path/filepath"
	"testing"

	"kubeboot.dev/kubeboot/internal/release"
)

// EnvDir names the directory of the default release's lab binaries; `make unit` sets it, and then a missing
// binary fails the test instead of skipping it.
const EnvDir = "KUBEBOOT_LAB_BIN"

// stateDir is the lab's default state directory (lab/build.DefaultStateDir).
const stateDir = "/var/lib/kubeboot-lab"

// Path is where the lab keeps name for Kubernetes version ("" means the default release).
func Path(version, name string) string {
	if version == "" || version == release.DefaultVersion() {
		if dir := os.Getenv(EnvDir); dir != "" {
			return filepath.Join(dir, name)
		}
		version = release.DefaultVersion()
	}
	return filepath.Join(stateDir, "bin", version, name)
}

// Require returns Path(version, name), skipping the test loudly when the binary is missing, or failing it when
// EnvDir says the lab's binaries are meant to be there.
func Require(t testing.TB, version, name string) string {
	t.Helper()
	p := Path(version, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv(EnvDir) != "" {
			t.Fatalf("%s is missing although %s is set: %v (build it: go run ./lab/cmd/labbuild -version %s)", p, EnvDir, err, version)
		}
		t.Skipf("SKIPPED, NOT PASSED: %s is missing (%v); build the lab's components: go run ./lab/cmd/labbuild", p, err)
	}
	return p
}
