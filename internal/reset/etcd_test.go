package reset

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
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

	"kubeboot.dev/kubeboot/internal/etcd"
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

func TestLocalEtcdMembersRefusesNonLoopback(t *testing.T) {
	m := &EtcdMember{ClientURLs: []string{"https://10.77.0.10:2379"}, TrustedCAFile: "/etc/kubernetes/pki/etcd/ca.crt"}
	_, err := LocalEtcdMembers(t.Context(), nodefs.FS{Root: t.TempDir()}, m)
	if want := "/etc/kubernetes/manifests/etcd.yaml: no loopback address in --listen-client-urls https://10.77.0.10:2379"; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

// TestLocalEtcdMembersRealEtcd runs a two-member etcd cluster on loopback (TLS for clients, client certificates
// required, as kubeadm configures it) and asks one member for the member list the way reset does. It needs the
// lab's etcd binary.
func TestLocalEtcdMembersRealEtcd(t *testing.T) {
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
	var list []etcd.Member
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if list, err = LocalEtcdMembers(t.Context(), fsys, m); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(root, "m0.log"))
		t.Fatalf("%v\netcd log tail:\n%s", err, tail(string(log), 20))
	}
	if len(list) != 2 {
		t.Errorf("listed %d members, want 2: %v", len(list), list)
	}

	// Nothing listening: a bounded error, not a hang.
	down := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	m.ClientURLs = []string{"https://" + down}
	start := time.Now()
	_, err = LocalEtcdMembers(t.Context(), fsys, m)
	want := "etcd is not reachable at https://" + down + ": dial tcp " + down + ": connect: connection refused"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("giving up on a member that is down took %s", took)
	}
}

// TestLocalEtcdMembersProbesWithATLSHandshake: reset probes its member as the etcd package does (a469118), with
// a TLS handshake, not a bare TCP connect. A listener that accepts connections but is not etcd's TLS endpoint is
// not reachable (a TCP connect alone passed it, and the etcd client then waited out its request timeout); etcd's
// endpoint sees a complete handshake, so it logs no "rejected connection on client endpoint".
func TestLocalEtcdMembersProbesWithATLSHandshake(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	pki := newTestPKI(t)
	writeTree(t, fsys, map[string]string{
		"/etc/kubernetes/pki/etcd/ca.crt":                 string(pki.caPEM),
		"/etc/kubernetes/pki/etcd/healthcheck-client.crt": string(pki.clientPEM),
		"/etc/kubernetes/pki/etcd/healthcheck-client.key": string(pki.clientKey),
	})
	member := func(l net.Listener) *EtcdMember {
		return &EtcdMember{ClientURLs: []string{"https://" + l.Addr().String()}, TrustedCAFile: "/etc/kubernetes/pki/etcd/ca.crt"}
	}
	// serve answers every connection with handle until the test ends.
	serve := func(t *testing.T, l net.Listener, handle func(net.Conn)) {
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					handle(conn)
				}()
			}
		}()
	}

	t.Run("a listener that is not etcd's TLS endpoint is not reachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serve(t, l, func(conn net.Conn) { _, _ = conn.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) })
		start := time.Now()
		_, err = LocalEtcdMembers(t.Context(), fsys, member(l))
		want := "etcd is not reachable at https://" + l.Addr().String() + ": tls: first record does not look like a TLS handshake"
		if err == nil || err.Error() != want {
			t.Errorf("error = %v\nwant    %s", err, want)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("giving up on a listener that is not etcd took %s", took)
		}
	})

	t.Run("etcd's TLS endpoint sees a complete handshake", func(t *testing.T) {
		serverCert, err := tls.X509KeyPair(pki.serverPEM, pki.serverKey)
		if err != nil {
			t.Fatal(err)
		}
		cas := x509.NewCertPool()
		cas.AppendCertsFromPEM(pki.caPEM)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// As etcd's client endpoint: a client certificate of the etcd CA is required.
		cfg := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: cas, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
		handshakes := make(chan error, 16)
		serve(t, l, func(conn net.Conn) {
			err := tls.Server(conn, cfg).HandshakeContext(t.Context())
			select {
			case handshakes <- err:
			default:
			}
		})
		// Not an etcd server beyond the handshake: the member list itself is not answered.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err = LocalEtcdMembers(ctx, fsys, member(l))
		if want := "list the etcd members at https://" + l.Addr().String() + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error = %v\nwant    %s...", err, want)
		}
		if err := <-handshakes; err != nil {
			t.Errorf("the probe's connection did not complete its handshake (etcd would log a rejected connection): %v", err)
		}
	})
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
