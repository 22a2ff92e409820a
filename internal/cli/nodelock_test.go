package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/nodelock"
)

// Issue 19's fault "two inits at once on one machine", in one process: flock belongs to an open file, so the lock
// held here refuses the command as another process's would.
func TestInitIsRefusedWhileAnotherHoldsTheNodeLock(t *testing.T) {
	root := t.TempDir()
	release, err := nodelock.Acquire(nodefs.FS{Root: root}, "kubeboot init")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	args := []string{"init", "phase", "certs", "all", "--rootfs", root, "--apiserver-advertise-address", "10.0.0.1", "--node-name", "n1"}

	code, _, errs := run(t, args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errs)
	}
	want := regexp.MustCompile(`another kubeboot is changing this node: pid ` + strconv.Itoa(os.Getpid()) +
		`, "kubeboot init", since \S+Z \(/var/lib/kubeboot/node\.lock\)\n` +
		`hint: wait for it to finish; kubeboot takes this lock only while it runs, so no lock is left behind by a process that ended`)
	if !want.MatchString(errs) {
		t.Errorf("stderr:\n%s\nwant it to match %s", errs, want)
	}
	if got, want := filesUnder(t, root), []string{"var/lib/kubeboot/node.lock"}; !slices.Equal(got, want) {
		t.Errorf("a refused init left %q under the root, want %q", got, want)
	}

	// A dry run changes nothing, so it takes no lock and runs beside the holder.
	if code, _, errs := run(t, append(args, "--dry-run")...); code != 0 {
		t.Errorf("dry run beside the holder: exit %d: %s", code, errs)
	}

	release()
	if code, _, errs := run(t, args...); code != 0 {
		t.Fatalf("init after the holder released: exit %d: %s", code, errs)
	}
}

func filesUnder(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// A command stopped by a signal says so beside the phase, and how to go back; an error without one is left alone.
func TestInterrupted(t *testing.T) {
	root := &cobra.Command{Use: "kubeboot"}
	cmd := &cobra.Command{Use: "init"}
	root.AddCommand(cmd)
	phaseErr := fmt.Errorf("phase wait-control-plane: %w", context.Canceled)

	cmd.SetContext(t.Context())
	if err := interrupted(cmd, phaseErr); err != phaseErr {
		t.Errorf("without a signal: %v, want the error as it is", err)
	}
	if err := interrupted(cmd, nil); err != nil {
		t.Errorf("no error: %v", err)
	}

	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("terminated signal received"))
	cmd.SetContext(ctx)
	err := interrupted(cmd, phaseErr)
	want := "interrupted (terminated signal received): phase wait-control-plane: context canceled"
	if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) ||
		hint.Of(err) != "what `kubeboot init` wrote before it stopped stays on the node: undo it with `kubeboot reset`, then run it again" {
		t.Fatalf("error %v (hint %q), want %s", err, hint.Of(err), want)
	}
}
