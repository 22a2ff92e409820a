package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestCNIConfig(t *testing.T) {
	b, err := CNIConfig("10.244.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type   string `json:"type"`
			IPMasq *bool  `json:"ipMasq"`
			IPAM   struct {
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) != 2 || conf.Plugins[0].Type != "bridge" || conf.Plugins[1].Type != "portmap" {
		t.Fatalf("plugins %+v, want bridge then portmap", conf.Plugins)
	}
	br := conf.Plugins[0]
	if br.IPMasq == nil || *br.IPMasq {
		t.Errorf("ipMasq %v, want false: nothing may be NATed", br.IPMasq)
	}
	if got := br.IPAM.Ranges[0][0].Subnet; got != "10.244.2.0/24" {
		t.Errorf("subnet %q, want 10.244.2.0/24", got)
	}
}

func TestHostsAndResolvConf(t *testing.T) {
	nodes := []Spec{{Name: "kblab-cp1", IP: "10.77.0.11"}, {Name: "kblab-w1", IP: "10.77.0.21"}}
	want := "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n10.77.0.11 kblab-cp1\n10.77.0.21 kblab-w1\n"
	if got := string(Hosts(nodes)); got != want {
		t.Errorf("hosts:\n%s\nwant:\n%s", got, want)
	}
	if got := string(ResolvConf("10.77.0.1")); got != "nameserver 10.77.0.1\n" {
		t.Errorf("resolv.conf %q", got)
	}
}

func TestContainerdConfig(t *testing.T) {
	conf := string(ContainerdConfig("registry.k8s.io/pause:3.10.2"))
	// Each of these was needed on the lab machine (LAB-FACTS §3).
	for _, want := range []string{
		`restrict_oom_score_adj = true`,
		`sandbox_image = "registry.k8s.io/pause:3.10.2"`,
		`SystemdCgroup = false`,
		`bin_dir = "/usr/lib/cni"`,
		`address = "/run/containerd/containerd.sock"`,
		`path = "/var/lib/containerd/opt"`,
		// NRI's socket is a machine-wide path the nodes would share.
		"[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("containerd config lacks %q", want)
		}
	}
	want := "runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\n"
	if got := string(CrictlConfig()); got != want {
		t.Errorf("crictl.yaml %q, want %q", got, want)
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	s := Spec{Name: "kblab-w1", IP: "10.77.0.21", Gateway: "10.77.0.1", PodSubnet: "10.244.2.0/24", Dir: filepath.Join(dir, "kblab-w1")}
	if err := Prepare(s, []Spec{s}); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(append([]string{}, BoundDirs...), BoundFiles...) {
		if _, err := os.Stat(s.HostPath(p)); err != nil {
			t.Errorf("node has no %s: %v", p, err)
		}
	}
	got, err := ReadSpec(s.SpecFile())
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Errorf("spec read back %+v, want %+v", got, s)
	}
	b, err := os.ReadFile(s.HostPath("/etc/cni/net.d/" + CNIConfigName))
	if err != nil || !strings.Contains(string(b), "10.244.2.0/24") {
		t.Errorf("CNI config %q, %v", b, err)
	}
}

func TestPrepareLoadBalancer(t *testing.T) {
	dir := t.TempDir()
	s := Spec{Name: "kblab-lb", Role: LoadBalancer, IP: "10.77.0.5", Gateway: "10.77.0.1", Dir: filepath.Join(dir, "kblab-lb"),
		LoadBalancer: &LoadBalancerSpec{Listen: "10.77.0.5:6443", Backends: []string{"10.77.0.11:6443"}, CAFile: "/ca.crt"}}
	cp := Spec{Name: "kblab-cp1", IP: "10.77.0.11"}
	if err := Prepare(s, []Spec{s, cp}); err != nil {
		t.Fatal(err)
	}
	hosts, err := os.ReadFile(s.HostPath("/etc/hosts"))
	if err != nil || !strings.Contains(string(hosts), "10.77.0.5 kblab-lb\n10.77.0.11 kblab-cp1\n") {
		t.Errorf("hosts %q, %v", hosts, err)
	}
	// No Kubernetes node: nothing for containerd, CNI or the kubelet.
	for _, p := range []string{"/etc/containerd", "/etc/cni", "/var/lib/kubelet", "/run/xtables.lock"} {
		if _, err := os.Stat(s.HostPath(p)); err == nil {
			t.Errorf("load balancer has %s", p)
		}
	}
	got, err := ReadSpec(s.SpecFile())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("spec read back %+v, want %+v", got, s)
	}
	if got, want := append(s.boundDirs(), s.boundFiles()...), []string{"/etc/resolv.conf", "/etc/hosts"}; !slices.Equal(got, want) {
		t.Errorf("load balancer binds %v, want %v", got, want)
	}
}

func TestLoadBalancerArgs(t *testing.T) {
	lb := LoadBalancerSpec{Listen: "10.77.0.5:6443", Backends: []string{"10.77.0.11:6443", "10.77.0.12:6443"}, CAFile: "/n/cp1/ca.crt"}
	base := "/lab/bin/kubeboot loadbalancer --listen 10.77.0.5:6443 --backend 10.77.0.11:6443 --backend 10.77.0.12:6443"
	tests := []struct {
		name     string
		caExists bool
		want     string
	}{
		{"before init: no CA yet", false, base},
		{"CA exists: checks verify", true, base + " --ca-file /n/cp1/ca.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(LoadBalancerArgs("/lab/bin", lb, tt.caExists), " "); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRemoveCgroupRootRefusesEverything(t *testing.T) {
	for _, root := range []string{"", "/", "//"} {
		if err := RemoveCgroupRoot(root); err == nil || !strings.Contains(err.Error(), "refusing a root that is the whole hierarchy") {
			t.Errorf("RemoveCgroupRoot(%q): %v", root, err)
		}
	}
}
