package clusterinfo

import (
	"bytes"
	"os"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

// FuzzKubeconfig feeds the server URL and the CA file (ca.crt, read from disk) to Kubeconfig, which renders what
// cluster-info publishes. What it renders must load as one cluster named "" with that server and CA; a CA file
// holding anything but certificates (a key put there by mistake) is refused without repeating it.
func FuzzKubeconfig(f *testing.F) {
	ca, err := os.ReadFile("testdata/ca.crt")
	if err != nil {
		f.Fatal(err)
	}
	key, err := os.ReadFile("testdata/ca.key")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("https://10.0.0.10:6443", ca)
	f.Add("https://[fd00::1]:6443", append(bytes.Clone(ca), ca...))
	f.Add("https://cp.example", append(bytes.Clone(ca), key...))
	f.Add("http://10.0.0.10:6443", ca)
	f.Add("https://:6443", ca)
	f.Add("https://10.0.0.10:6443", []byte("not PEM"))
	f.Fuzz(func(t *testing.T, server string, caPEM []byte) {
		b, err := Kubeconfig(server, caPEM)
		if err != nil {
			if b != nil {
				t.Fatalf("Kubeconfig returned %d bytes and the error %v", len(b), err)
			}
			if keyleak.In([]byte(err.Error())) {
				t.Fatalf("the error carries key material: %v", err)
			}
			return
		}
		kc, err := clientcmd.Load(b)
		if err != nil {
			t.Fatalf("what Kubeconfig rendered does not load: %v\n%s", err, b)
		}
		c, ok := kc.Clusters[""]
		if len(kc.Clusters) != 1 || !ok || c.Server != server || !bytes.Equal(c.CertificateAuthorityData, caPEM) {
			t.Fatalf("rendered %q with %d bytes of CA, loaded as %+v", server, len(caPEM), kc.Clusters)
		}
	})
}
