package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/nodelock"
)

// lockNode takes the node lock on fsys for cmd, named by its command path ("kubeboot init phase certs"), so that
// two commands that change one node never run at once: the second is refused and the first goes on. Every
// command that changes the node takes it once its flags and configuration are read and before it writes
// anything, and releases it when it returns; a dry run changes nothing and takes no lock, so it can run beside a
// real run.
func lockNode(fsys nodefs.FS, cmd *cobra.Command) (release func(), err error) {
	return nodelock.Acquire(fsys, cmd.CommandPath())
}

// holdNode is lockNode for a command that runs phases (workflow.Options.Hold), taken once the phases named by
// --skip-phases are known to exist; nil on a dry run.
func holdNode(fsys nodefs.FS, cmd *cobra.Command, dryRun bool) func() (func(), error) {
	if dryRun {
		return nil
	}
	return func() (func(), error) { return lockNode(fsys, cmd) }
}

// interrupted is the error of a command that changes the node and was stopped by a signal (SIGINT, SIGTERM) while
// its phases ran: it names the signal beside the phase the error names, and says how to go back, since what the
// command wrote so far stays on the node. Other errors are returned as they are.
func interrupted(cmd *cobra.Command, err error) error {
	ctx := cmd.Context()
	if err == nil || ctx.Err() == nil {
		return err
	}
	return hint.With(fmt.Errorf("interrupted (%v): %w", context.Cause(ctx), err),
		fmt.Sprintf("what `%s` wrote before it stopped stays on the node: undo it with `kubeboot reset`, then run it again", cmd.CommandPath()))
}
