package build

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/release"
)

func TestVersionLDFlags(t *testing.T) {
	tests := []struct {
		version string
		want    string
		wantErr string
	}{
		{
			version: "v1.34.4",
			want: "-s -w" +
				" -X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1" +
				" -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean" +
				" -X k8s.io/client-go/pkg/version.gitVersion=v1.34.4 -X k8s.io/client-go/pkg/version.gitMajor=1" +
				" -X k8s.io/client-go/pkg/version.gitMinor=34 -X k8s.io/client-go/pkg/version.gitTreeState=clean",
		},
		{
			version: "v1.35.0-rc.1",
			want: "-s -w" +
				" -X k8s.io/component-base/version.gitVersion=v1.35.0-rc.1 -X k8s.io/component-base/version.gitMajor=1" +
				" -X k8s.io/component-base/version.gitMinor=35 -X k8s.io/component-base/version.gitTreeState=clean" +
				" -X k8s.io/client-go/pkg/version.gitVersion=v1.35.0-rc.1 -X k8s.io/client-go/pkg/version.gitMajor=1" +
				" -X k8s.io/client-go/pkg/version.gitMinor=35 -X k8s.io/client-go/pkg/version.gitTreeState=clean",
		},
		{version: "1.34.4", wantErr: `Kubernetes version "1.34.4": want the form v1.MINOR.PATCH, e.g. v1.37.2`},
		{version: "v1.34", wantErr: `Kubernetes version "v1.34": want the form v1.MINOR.PATCH, e.g. v1.37.2`},
		{version: "v1.34.4 -X evil=1", wantErr: `Kubernetes version "v1.34.4 -X evil=1": want the form v1.MINOR.PATCH, e.g. v1.37.2`},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			got, err := versionLDFlags(tt.version)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestStagingVersion(t *testing.T) {
	for in, want := range map[string]string{"v1.34.4": "v0.34.4", "v1.35.0-rc.1": "v0.35.0-rc.1"} {
		if got := stagingVersion(in); got != want {
			t.Errorf("stagingVersion(%s) = %s, want %s", in, got, want)
		}
	}
}

const upstreamGoMod = `module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
	k8s.io/api v0.0.0
	k8s.io/kubelet v0.0.0 // indirect
)

replace k8s.io/single => ./staging/src/k8s.io/single

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/kubelet => ./staging/src/k8s.io/kubelet // a comment
	github.com/other => github.com/other v1.2.3
)
`

func TestParseGoMod(t *testing.T) {
	if got, want := stagingModules([]byte(upstreamGoMod)), []string{"k8s.io/api", "k8s.io/kubelet", "k8s.io/single"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stagingModules = %v, want %v", got, want)
	}
	if got := goDirective([]byte(upstreamGoMod)); got != "1.24.0" {
		t.Errorf("goDirective = %q, want 1.24.0", got)
	}
	for mod, want := range map[string]string{"k8s.io/api": "v0.0.0", "k8s.io/kubelet": "v0.0.0", "k8s.io/absent": "", "k8s.io/single": ""} {
		if got := requiredVersion([]byte(upstreamGoMod), mod); got != want {
			t.Errorf("requiredVersion(%s) = %q, want %q", mod, got, want)
		}
	}
	if got := requiredVersion([]byte("module x\nrequire k8s.io/kubernetes v1.34.4\n"), "k8s.io/kubernetes"); got != "v1.34.4" {
		t.Errorf("single-line require: got %q", got)
	}
}

// TestRenderMatchesCheckedIn derives the replace block for the default release from upstream's go.mod, as
// Ensure does for other versions, and compares it with the checked-in module's.
func TestRenderMatchesCheckedIn(t *testing.T) {
	version := release.DefaultVersion()
	gomodcache := os.Getenv("GOMODCACHE")
	if gomodcache == "" {
		gomodcache = filepath.Join(os.Getenv("HOME"), "go", "pkg", "mod")
	}
	upstream, err := os.ReadFile(filepath.Join(gomodcache, "cache", "download", "k8s.io", "kubernetes", "@v", version+".mod"))
	if err != nil {
		t.Skipf("k8s.io/kubernetes %s go.mod not in the module cache: %v", version, err)
	}
	checkedIn, err := os.ReadFile("../components/k8s/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	rendered := string(renderK8sGoMod(version, goDirective(upstream), stagingModules(upstream)))
	if got, want := replaceBlock(rendered), replaceBlock(string(checkedIn)); got != want {
		t.Errorf("rendered replace block:\n%s\nchecked-in:\n%s", got, want)
	}
	if requiredVersion([]byte(rendered), "k8s.io/kubernetes") != version {
		t.Errorf("rendered go.mod does not require k8s.io/kubernetes %s:\n%s", version, rendered)
	}
}

func replaceBlock(goMod string) string {
	_, after, ok := strings.Cut(goMod, "replace (\n")
	if !ok {
		return ""
	}
	block, _, _ := strings.Cut(after, ")")
	return block
}
