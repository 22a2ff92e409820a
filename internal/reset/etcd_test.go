package reset

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/testutil/labbin"
)

func TestReadEtcdManifest(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	if m, err := ReadEtcdManifest(fsys); m != nil || err != nil {
		t.Fatalf("no manifest: got %+v, %v; want nil, nil", m, err)
	}
	writeTree(t, fsys, map[string]string{EtcdManifest: etcdManifest("cp1", "cp0=https://10.77.0.9:2380,cp1=https://10.77.0.10:2380", "/data/etcd/")})
	m, err := ReadEtcdManifest(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := EtcdMember{
		Name:                "cp1",
		DataDir:             "/data/etcd",
		InitialCluster:      []string{"cp0=https://10.77.0.9:2380", "cp1=https://10.77.0.10:2380"},
		ClientURLs:          []string{"https://127.0.0.1:2379", "https://10.77.0.10:2379"},
		AdvertiseClientURLs: []string{"https://10.77.0.10:2379"},
		PeerURLs:            []string{"https://10.77.0.10:2380"},
		TrustedCAFile:       "/etc/kubernetes/pki/etcd/ca.crt",
	}
	if fmt.Sprint(*m) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", *m, want)
	}

	noVolume := strings.Replace(etcdManifest("cp1", "cp1=https://10.77.0.10:2380", "/var/lib/etcd"), "name: etcd-data\n", "name: data\n", -1)
	writeTree(t, fsys, map[string]string{EtcdManifest: noVolume})
	_, err = ReadEtcdManifest(fsys)
	if wantErr := "/etc/kubernetes/manifests/etcd.yaml: no hostPath volume named etcd-data, so where etcd keeps its data is unknown"; err == nil || err.Error() != wantErr {
		t.Errorf("error = %v\nwant    %s", err, wantErr)
	}
}

func TestCountEtcdMembersRefusesNonLoopback(t *testing.T) {
	m := &EtcdMember{ClientURLs: []string{"https://10.77.0.10:2379"}, TrustedCAFile: "/etc/kubernetes/pki/etcd/ca.crt"}
	_, err := CountEtcdMembers(t.Context(), nodefs.FS{Root: t.TempDir()}, m)
	if want := "/etc/kubernetes/manifests/etcd.yaml: no loopback address in --listen-client-urls https://10.77.0.10:2379"; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

// TestCountEtcdMembersRealEtcd runs a two-member etcd cluster on loopback (TLS for clients, client certificates
// required, as kubeadm configures it) and asks one member for the member list the way reset does. It needs the
// lab's etcd binary.
func TestCountEtcdMembersRealEtcd(t *testing.T) {
	bin := labbin.Require(t, "", "etcd")
	root := t.TempDir()
	fsys := nodefs.FS{Root: root}
	pki := newTestPKI(t)
	writeTree(t, fsys, map[string]string{
		"/etc/kubernetes/pki/etcd/ca.crt":                 string(pki.caPEM),
		"/etc/kubernetes/pki/etcd/server.crt":             string(pki.serverPEM),
		"/etc/kubernetes/pki/etcd/server.key":             string(pki.serverKey),
		"/etc/kubernetes/pki/etcd/healthcheck-client.crt": string(pki.clientPEM),
		"/etc/kubernetes/pki/etcd/healthcheck-client.key": string(pki.clientKey),
	})
	certDir := fsys.Path("/etc/kubernetes/pki/etcd")

	ports := freePorts(t, 4)
	names := []string{"m0", "m1"}
	var initial []string
	for i, n := range names {
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", n, ports[2*i+1]))
	}
	for i, n := range names {
		cmd := exec.Command(bin,
			"--name="+n,
			"--data-dir="+filepath.Join(root, "data-"+n),
			fmt.Sprintf("--listen-client-urls=https://127.0.0.1:%d", ports[2*i]),
			fmt.Sprintf("--advertise-client-urls=https://127.0.0.1:%d", ports[2*i]),
			fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", ports[2*i+1]),
			fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", ports[2*i+1]),
			"--initial-cluster="+strings.Join(initial, ","),
			"--client-cert-auth=true",
			"--trusted-ca-file="+filepath.Join(certDir, "ca.crt"),
			"--cert-file="+filepath.Join(certDir, "server.crt"),
			"--key-file="+filepath.Join(certDir, "server.key"),
			"--listen-metrics-urls=", // none: no extra port
		)
		logFile, err := os.Create(filepath.Join(root, n+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logFile.Close()
		})
	}

	// As in the first control plane's manifest: --initial-cluster names only itself.
	m := &EtcdMember{
		Name:           "m0",
		InitialCluster: []string{initial[0]},
		ClientURLs:     []string{fmt.Sprintf("https://127.0.0.1:%d", ports[0]), "https://10.77.0.10:2379"},
		TrustedCAFile:  "/etc/kubernetes/pki/etcd/ca.crt",
	}
	var n int
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n, err = CountEtcdMembers(t.Context(), fsys, m); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(root, "m0.log"))
		t.Fatalf("%v\netcd log tail:\n%s", err, tail(string(log), 20))
	}
	if n != 2 {
		t.Errorf("counted %d members, want 2", n)
	}

	// Nothing listening: a bounded error, not a hang.
	down := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	m.ClientURLs = []string{"https://" + down}
	start := time.Now()
	_, err = CountEtcdMembers(t.Context(), fsys, m)
	want := "etcd is not reachable at https://" + down + ": dial tcp " + down + ": connect: connection refused"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("giving up on a member that is down took %s", took)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

type testPKI struct {
	caPEM, serverPEM, serverKey, clientPEM, clientKey []byte
}

// newTestPKI makes an etcd CA, a server certificate for 127.0.0.1 and a client certificate.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := testPKI{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	p.serverPEM, p.serverKey = leaf(2, "etcd-server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientPEM, p.clientKey = leaf(3, "kube-etcd-healthcheck-client", x509.ExtKeyUsageClientAuth, nil)
	return p
}
