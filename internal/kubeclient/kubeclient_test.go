package kubeclient

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// limits returns what a client built here sends its requests with: the request timeout and the rate limit.
func limits(t *testing.T, c kubernetes.Interface) (time.Duration, float32) {
	t.Helper()
	rc, ok := c.CoreV1().RESTClient().(*rest.RESTClient)
	if !ok {
		t.Fatalf("RESTClient is a %T", c.CoreV1().RESTClient())
	}
	return rc.Client.Timeout, rc.GetRateLimiter().QPS()
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name        string
		o           Options
		wantTimeout time.Duration
		wantQPS     float32
	}{
		{"Command", Command, 30 * time.Second, rest.DefaultQPS},
		{"Init", Init, 30 * time.Second, 100},
		{"Bootstrap", Bootstrap, 10 * time.Second, rest.DefaultQPS},
		{"zero: client-go's defaults", Options{}, 0, rest.DefaultQPS},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := &rest.Config{Host: "https://127.0.0.1:6443", Timeout: time.Minute}
			c, err := New(rc, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if timeout, qps := limits(t, c); timeout != tt.wantTimeout || qps != tt.wantQPS {
				t.Errorf("timeout %s, QPS %v; want %s, %v", timeout, qps, tt.wantTimeout, tt.wantQPS)
			}
			if rc.Timeout != time.Minute || rc.QPS != 0 {
				t.Errorf("the caller's rest.Config changed: timeout %s, QPS %v", rc.Timeout, rc.QPS)
			}
		})
	}
}

func TestFromKubeconfig(t *testing.T) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://10.0.0.1:6443", InsecureSkipTLSVerify: true}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "abcdef.0123456789abcdef"}
	kc.Contexts["u@c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "u@c"
	c, err := FromKubeconfig(kc, Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CoreV1().RESTClient().Get().URL().Host; got != "10.0.0.1:6443" {
		t.Errorf("host %q, want the current context's server", got)
	}
	if timeout, _ := limits(t, c); timeout != Bootstrap.Timeout {
		t.Errorf("timeout %s, want %s", timeout, Bootstrap.Timeout)
	}

	kc.CurrentContext = "missing"
	_, err = FromKubeconfig(kc, Bootstrap)
	if want := "invalid configuration: [context was not found for specified context: missing, cluster has no server defined]"; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	// The CA file is named relative to the kubeconfig, as kubectl reads it.
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("not read until a request"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt}
users:
- name: u
  user: {token: abcdef.0123456789abcdef}
contexts:
- name: u@c
  context: {cluster: c, user: u}
current-context: u@c
`
	path := filepath.Join(dir, "admin.conf")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://10.0.0.1:6443" || rc.CAFile != filepath.Join(dir, "ca.crt") || rc.BearerToken != "abcdef.0123456789abcdef" {
		t.Errorf("host %q, CA file %q, token %q", rc.Host, rc.CAFile, rc.BearerToken)
	}
	missing := filepath.Join(dir, "missing.conf")
	_, err = LoadFile(missing)
	if want := "stat " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}
