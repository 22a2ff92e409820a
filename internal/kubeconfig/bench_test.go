package kubeconfig

import (
	"os"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

// BenchmarkInitCredentials is the work of init's credentials: every certificate, the service-account key and the
// five kubeconfig files, written into an empty directory with real keys (init itself runs these as concurrent
// phases, kubelet.conf first). Run with -cpu 1,2 to see what the concurrent key generation buys.
func BenchmarkInitCredentials(b *testing.B) {
	for _, alg := range []config.EncryptionAlgorithmType{config.EncryptionAlgorithmRSA2048, config.EncryptionAlgorithmECDSAP256} {
		b.Run(string(alg), func(b *testing.B) {
			cfg := testConfig(alg)
			parent := b.TempDir()
			for b.Loop() {
				root, err := os.MkdirTemp(parent, "node-")
				if err != nil {
					b.Fatal(err)
				}
				fsys := nodefs.FS{Root: root}
				if _, err := pki.EnsureAll(b.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
					b.Fatal(err)
				}
				if _, err := EnsureAll(b.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
