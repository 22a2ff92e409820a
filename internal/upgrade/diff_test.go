package upgrade

import (
	"bytes"
	"path/filepath"
	"testing"

	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

func TestDiff(t *testing.T) {
	for _, tt := range []struct {
		name    string
		context int
	}{{"context-3", DefaultContextLines}, {"context-0", 0}} {
		t.Run(tt.name, func(t *testing.T) {
			fsys := node(t)
			var out bytes.Buffer
			if err := Diff(&out, fsys, targetOf(testInit(t, "v1.37.2")), tt.context); err != nil {
				t.Fatal(err)
			}
			golden.File(t, filepath.Join("testdata", "diff", tt.name+".diff"), out.Bytes())
		})
	}
}

func TestDiffEqual(t *testing.T) {
	fsys := node(t)
	var out bytes.Buffer
	if err := Diff(&out, fsys, targetOf(testInit(t, "v1.36.3")), DefaultContextLines); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("equal manifests gave a diff:\n%s", out.String())
	}
}

func TestDiffWithoutManifest(t *testing.T) {
	fsys := node(t)
	if err := fsys.Remove(staticpod.Path(staticpod.SchedulerName)); err != nil {
		t.Fatal(err)
	}
	err := Diff(&bytes.Buffer{}, fsys, targetOf(testInit(t, "v1.37.2")), 3)
	if err == nil {
		t.Fatal("Diff without a scheduler manifest: no error")
	}
}
