package renewal

import (
	"bytes"
	"encoding/base64"
	"os"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

// FuzzRead feeds the files check-expiration and renew read to Set.Read: a certificate file, or a kubeconfig with an
// embedded client certificate. It returns the first certificate or an error naming the file, with no key material.
func FuzzRead(f *testing.F) {
	cert, err := os.ReadFile("testdata/leaf.crt")
	if err != nil {
		f.Fatal(err)
	}
	key, err := os.ReadFile("testdata/leaf.key")
	if err != nil {
		f.Fatal(err)
	}
	ca, err := os.ReadFile("testdata/ca.crt")
	if err != nil {
		f.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: "https://10.0.0.10:6443", CertificateAuthorityData: ca}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	kc.Contexts["admin@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "admin"}
	kc.CurrentContext = "admin@kubernetes"
	conf, err := clientcmd.Write(*kc)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cert, false)
	f.Add(append(bytes.Clone(cert), ca...), false)
	f.Add(conf, true)
	f.Add(bytes.Replace(conf, []byte("admin@kubernetes"), []byte("other"), 1), true)
	f.Add(key, false)
	f.Add(key, true)
	f.Add([]byte("users:\n- name: admin\n  user:\n    client-certificate-data: "+base64.StdEncoding.EncodeToString(key)+"\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, kubeconfig bool) {
		fsys := nodefs.Memory()
		c := Cert{Name: "admin.conf", CAName: "ca", File: "/etc/kubernetes/admin.conf", Kubeconfig: kubeconfig}
		if !kubeconfig {
			c = Cert{Name: "apiserver", CAName: "ca", File: "/etc/kubernetes/pki/apiserver.crt"}
		}
		if err := fsys.WriteFile(c.File, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Set{FS: fsys, CertDir: "/etc/kubernetes/pki", KubeconfigDir: "/etc/kubernetes", Certs: []Cert{c}}
		got, err := s.Read(c)
		if err != nil {
			if got != nil {
				t.Fatalf("Read returned a certificate and the error %v", err)
			}
			if keyleak.In([]byte(err.Error())) {
				t.Fatalf("the error carries key material: %v", err)
			}
			if loaded, lerr := clientcmd.Load(data); lerr == nil {
				for _, u := range loaded.AuthInfos {
					if keyleak.Echoes(err.Error(), string(u.ClientKeyData)) || keyleak.Echoes(err.Error(), u.Token) {
						t.Fatalf("the error repeats a credential of the kubeconfig: %v", err)
					}
				}
			}
			return
		}
		if got == nil {
			t.Fatal("Read returned neither a certificate nor an error")
		}
	})
}
