package dryrun

import (
	"bytes"
	"testing"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

func TestReportShowsNoSecret(t *testing.T) {
	fsys := nodefs.Overlay(nodefs.FS{Root: t.TempDir()})
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --secure-port=6443
    env:
    - name: HTTPS_PROXY
      value: http://user:password@proxy:3128
    - name: FROM_SECRET
      valueFrom:
        secretKeyRef:
          key: k
          name: s
    name: kube-apiserver
    resources: {}
status: {}
`
	for _, f := range []nodefs.File{
		{Path: "/etc/kubernetes/pki/ca.crt", Mode: 0o644, Data: []byte("-----BEGIN CERTIFICATE-----\n")},
		{Path: "/etc/kubernetes/pki/ca.key", Mode: 0o600, Data: []byte("-----BEGIN RSA PRIVATE KEY-----\n")},
		{Path: "/etc/kubernetes/pki/mislaid.pem", Mode: 0o644, Data: []byte("-----BEGIN EC PRIVATE KEY-----\n")},
		{Path: "/etc/kubernetes/bootstrap-kubelet.conf", Mode: 0o600, Data: []byte("token: abcdef.0123456789abcdef\n")},
		{Path: "/etc/kubernetes/manifests/kube-apiserver.yaml", Mode: 0o600, Data: []byte(pod)},
		{Path: "/etc/kubernetes/manifests/not-a-pod.yaml", Mode: 0o600, Data: []byte("password: x\n")},
	} {
		if err := fsys.WriteFile(f.Path, f.Data, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := Report(&out, fsys); err != nil {
		t.Fatal(err)
	}
	want := `[dryrun] would write 6 files:
[dryrun]   -rw------- /etc/kubernetes/bootstrap-kubelet.conf (31 bytes)
[dryrun]   -rw------- /etc/kubernetes/manifests/kube-apiserver.yaml (392 bytes)
[dryrun]   -rw------- /etc/kubernetes/manifests/not-a-pod.yaml (12 bytes)
[dryrun]   -rw-r--r-- /etc/kubernetes/pki/ca.crt (28 bytes)
[dryrun]   -rw------- /etc/kubernetes/pki/ca.key (32 bytes)
[dryrun]   -rw-r--r-- /etc/kubernetes/pki/mislaid.pem (31 bytes)
[dryrun] --- /etc/kubernetes/manifests/kube-apiserver.yaml
` + `apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --secure-port=6443
    env:
    - name: HTTPS_PROXY
      value: <hidden>
    - name: FROM_SECRET
      valueFrom:
        secretKeyRef:
          key: k
          name: s
    name: kube-apiserver
    resources: {}
status: {}

[dryrun] --- /etc/kubernetes/pki/ca.crt
-----BEGIN CERTIFICATE-----

`
	if out.String() != want {
		t.Errorf("report\n%s\nwant\n%s", out.String(), want)
	}
}
