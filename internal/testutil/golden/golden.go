// Package golden compares test output with files under testdata, and rewrites them when the tests run with
// -update. Only tests import it.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata from the current output")

// File compares got with the file at path, or first rewrites that file under -update.
func File(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	compare(t, path, got)
}

// Dir compares files (name to content) with the files in dir, which must hold exactly those, or first replaces
// dir with them under -update.
func Dir(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if len(entries) != len(files) {
		t.Fatalf("%s holds %d files, the test rendered %d (run the test with -update and review the diff)", dir, len(entries), len(files))
	}
	for name, b := range files {
		compare(t, filepath.Join(dir, name), b)
	}
}

func compare(t testing.TB, path string, got []byte) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-golden +got); rerun the test with -update if the change is intended:\n%s", path, d)
	}
}
