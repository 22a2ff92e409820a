package nodelock

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"testing"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

func TestAcquireRefusesASecondHolder(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	release, err := Acquire(fsys, "kubeboot init")
	if err != nil {
		t.Fatalf("first Acquire: %v", err)
	}
	// flock belongs to an open file description, so a second open in this process is refused like another process.
	_, err = Acquire(fsys, "kubeboot reset")
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire = %v, want ErrHeld", err)
	}
	want := regexp.MustCompile(`^another kubeboot is changing this node: pid ` + strconv.Itoa(os.Getpid()) +
		`, "kubeboot init", since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(/var/lib/kubeboot/node\.lock\)$`)
	if !want.MatchString(err.Error()) {
		t.Errorf("error = %q, want it to match %s", err, want)
	}
	if got := hint.Of(err); got != "wait for it to finish; kubeboot takes this lock only while it runs, so no lock is left behind by a process that ended" {
		t.Errorf("hint = %q", got)
	}

	fi, err := os.Stat(fsys.Path(Path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode = %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(fsys.Path("/var/lib/kubeboot"))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("lock directory mode = %v, want 0700", di.Mode().Perm())
	}

	release()
	release3, err := Acquire(fsys, "kubeboot upgrade apply")
	if err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	defer release3()
	b, err := os.ReadFile(fsys.Path(Path))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^pid \d+, "kubeboot upgrade apply", since \S+\n$`).Match(b) {
		t.Errorf("lock file = %q, want the third holder alone", b)
	}
}

func TestAcquireIgnoresTheFileOfAnEndedHolder(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	// What a holder that ended leaves: its line, but no flock (the kernel dropped it with the process).
	if err := fsys.WriteFile(Path, []byte(`pid 1, "kubeboot init", since 2026-12-03T21:50:03Z`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	release, err := Acquire(fsys, "kubeboot init")
	if err != nil {
		t.Fatalf("Acquire over an ended holder's file: %v", err)
	}
	defer release()
	fi, err := os.Stat(fsys.Path(Path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestAcquireOnMemoryIsANoOp(t *testing.T) {
	release, err := Acquire(nodefs.Memory(), "kubeboot init")
	if err != nil {
		t.Fatal(err)
	}
	release()
}
