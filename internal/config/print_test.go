package config

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
	"kubeboot.dev/kubeboot/internal/testutil/labbin"
)

// printedDocuments are the outputs that users see or kubeboot stores, by golden file name.
func printedDocuments(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var err error
	if out["init-defaults.yaml"], err = DefaultInitDocuments(); err != nil {
		t.Fatal(err)
	}
	if out["init-defaults-component-configs.yaml"], err = DefaultInitDocuments(KindKubelet, KindProxy); err != nil {
		t.Fatal(err)
	}
	if out["join-defaults.yaml"], err = DefaultJoinDocuments(); err != nil {
		t.Fatal(err)
	}
	if out["reset-defaults.yaml"], err = DefaultResetDocuments(); err != nil {
		t.Fatal(err)
	}
	cfg := &Init{}
	cfg.Cluster.Networking.PodSubnet = "10.244.0.0/16"
	if err := SetInitDefaults(cfg, testEnv()); err != nil {
		t.Fatal(err)
	}
	if out["init-resolved.yaml"], err = MarshalInit(cfg); err != nil {
		t.Fatal(err)
	}
	if out["cluster-configuration.yaml"], err = MarshalClusterConfiguration(&cfg.Cluster); err != nil {
		t.Fatal(err)
	}
	if out["kubelet-configuration.yaml"], err = MarshalKubeletConfiguration(cfg.Kubelet); err != nil {
		t.Fatal(err)
	}
	if out["kube-proxy-configuration.yaml"], err = MarshalKubeProxyConfiguration(cfg.Proxy); err != nil {
		t.Fatal(err)
	}
	j := validJoin(t)
	if out["join-resolved.yaml"], err = MarshalJoinConfiguration(&j.Join); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPrintedDocumentsGolden(t *testing.T) {
	for name, b := range printedDocuments(t) {
		t.Run(name, func(t *testing.T) { golden.File(t, filepath.Join("testdata", name), b) })
	}
}

func TestDefaultInitDocumentsUnknownComponent(t *testing.T) {
	_, err := DefaultInitDocuments("KubeSchedulerConfiguration")
	assertError(t, err, `unknown component config "KubeSchedulerConfiguration": use KubeletConfiguration or KubeProxyConfiguration`)
}

// The printed documents read back strictly, and default and validate without change of meaning.
func TestPrintedDocumentsRoundTrip(t *testing.T) {
	docs := printedDocuments(t)
	for _, name := range []string{"init-defaults.yaml", "init-defaults-component-configs.yaml", "init-resolved.yaml"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadInit(docs[name])
			if err != nil {
				t.Fatal(err)
			}
			if err := SetInitDefaults(cfg, testEnv()); err != nil {
				t.Fatal(err)
			}
			if err := ValidateInit(cfg); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("init-resolved.yaml is a fixed point", func(t *testing.T) {
		cfg, err := LoadInit(docs["init-resolved.yaml"])
		if err != nil {
			t.Fatal(err)
		}
		if err := SetInitDefaults(cfg, testEnv()); err != nil {
			t.Fatal(err)
		}
		again, err := MarshalInit(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(string(docs["init-resolved.yaml"]), string(again)); d != "" {
			t.Errorf("(-first +second):\n%s", d)
		}
	})
	for _, name := range []string{"join-defaults.yaml", "join-resolved.yaml"} {
		t.Run(name, func(t *testing.T) {
			j, err := LoadJoin(docs[name])
			if err != nil {
				t.Fatal(err)
			}
			if err := SetJoinDefaults(j, testEnv()); err != nil {
				t.Fatal(err)
			}
			if err := ValidateJoin(j); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("reset-defaults.yaml", func(t *testing.T) {
		r, err := LoadReset(docs["reset-defaults.yaml"])
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateReset(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cluster-configuration.yaml", func(t *testing.T) {
		c, err := LoadClusterConfiguration(docs["cluster-configuration.yaml"])
		if err != nil {
			t.Fatal(err)
		}
		if c.Networking.PodSubnet != "10.244.0.0/16" || c.KubernetesVersion != "v1.37.2" {
			t.Errorf("read back %+v", c)
		}
	})
}

// TestUpstreamKubeadmAcceptsOurDocuments runs upstream kubeadm v1.37.2 on what kubeboot prints and stores.
// It needs the lab's kubeadm binary and is skipped, loudly, without it.
func TestUpstreamKubeadmAcceptsOurDocuments(t *testing.T) {
	upstreamKubeadm := labbin.Require(t, "", "kubeadm")
	dir := t.TempDir()
	run := func(t *testing.T, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), upstreamKubeadm, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubeadm %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return out
	}

	docs := printedDocuments(t)
	for _, name := range []string{"init-defaults.yaml", "init-defaults-component-configs.yaml", "init-resolved.yaml",
		"join-defaults.yaml", "join-resolved.yaml", "reset-defaults.yaml", "cluster-configuration.yaml"} {
		t.Run("validate "+name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, docs[name], 0o600); err != nil {
				t.Fatal(err)
			}
			out := run(t, "config", "validate", "--config", path)
			if !strings.Contains(string(out), "ok") {
				t.Errorf("kubeadm config validate printed %q, want ok", out)
			}
		})
	}

	// Our printed defaults are upstream's, except for the two deliberate differences.
	t.Run("print init-defaults matches upstream", func(t *testing.T) {
		up := run(t, "config", "print", "init-defaults", "--component-configs", "KubeletConfiguration,KubeProxyConfiguration")
		up = bytes.Replace(up, []byte("kubernetesVersion: 1.37.0\n"), []byte("kubernetesVersion: v1.37.2\n"), 1)
		if d := cmp.Diff(string(up), string(docs["init-defaults-component-configs.yaml"])); d != "" {
			t.Errorf("(-upstream +kubeboot):\n%s", d)
		}
	})
	t.Run("print join-defaults matches upstream", func(t *testing.T) {
		up := string(run(t, "config", "print", "join-defaults"))
		host, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		up = strings.Replace(up, "  name: "+strings.ToLower(host)+"\n", "  name: node\n", 1)
		if d := cmp.Diff(up, string(docs["join-defaults.yaml"])); d != "" {
			t.Errorf("(-upstream +kubeboot):\n%s", d)
		}
	})

	old := filepath.Join(dir, "v1beta3.yaml")
	if err := os.WriteFile(old, []byte(v1beta3Init), 0o600); err != nil {
		t.Fatal(err)
	}
	// kubeadm v1.37 no longer reads v1beta3 and sends its users to kubeadm v1.36; kubeboot still reads it.
	t.Run("kubeadm v1.37 refuses v1beta3", func(t *testing.T) {
		out, err := exec.CommandContext(t.Context(), upstreamKubeadm, "config", "migrate", "--old-config", old).CombinedOutput()
		if want := `your configuration file uses an old API spec: "kubeadm.k8s.io/v1beta3"`; err == nil || !strings.Contains(string(out), want) {
			t.Errorf("kubeadm config migrate of v1beta3: %v\n%s\nwant a refusal containing %s", err, out, want)
		}
	})
	// kubeadm v1.36's own v1beta3 conversion (config migrate) and ours agree.
	t.Run("v1beta3 conversion matches kubeadm v1.36 config migrate", func(t *testing.T) {
		// kubeadm v1.36 is built only with the v1.36 lab (go run ./lab/cmd/labbuild -version v1.36.3).
		upstreamKubeadm136 := labbin.Require(t, release.Oldest().Version, "kubeadm")
		up, err := exec.CommandContext(t.Context(), upstreamKubeadm136, "config", "migrate", "--old-config", old).Output()
		if err != nil {
			t.Fatalf("kubeadm v1.36 config migrate: %v", err)
		}
		cfg, err := LoadInit([]byte(v1beta3Init))
		if err != nil {
			t.Fatal(err)
		}
		if err := SetInitDefaults(cfg, testEnv()); err != nil {
			t.Fatal(err)
		}
		cfg.Kubelet, cfg.Proxy = nil, nil // migrate prints only the kubeadm documents
		ours, err := MarshalInit(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(string(up), string(ours)); d != "" {
			t.Errorf("(-kubeadm +kubeboot):\n%s", d)
		}
	})
}
