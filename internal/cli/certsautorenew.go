package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/autorenew"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// autoRenewDeps are what `certs auto-renew install` learns of the machine; tests replace them.
type autoRenewDeps struct {
	// binary is the path of this kubeboot, which the timer runs.
	binary     func() (string, error)
	hostname   func() (string, error)
	initSystem func(fsys nodefs.FS) kubelet.InitSystem
}

func hostAutoRenewDeps() autoRenewDeps {
	return autoRenewDeps{
		binary:     nodeenv.Executable,
		hostname:   os.Hostname,
		initSystem: kubelet.DetectInitSystem,
	}
}

func newCertsAutoRenewCmd(stdout io.Writer, deps autoRenewDeps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auto-renew",
		Short: "Renew this node's certificates automatically, before they expire (beyond kubeadm)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var within time.Duration
	install := &cobra.Command{
		Use:   "install",
		Short: "Renew daily what is due, and restart the components that read it",
		Long: `Install the daily renewal of this control-plane node's certificates: every day, "kubeboot certs renew all
--if-expires-within WINDOW --restart" renews the certificates that expire within WINDOW, if any, and restarts
this node's components that read them, one at a time, refusing while another control plane is unhealthy (it
tries again the next day).

Where systemd runs, it writes /etc/systemd/system/kubeboot-certs-renew.service and kubeboot-certs-renew.timer
(daily, at a random time within 6 hours after midnight, so that the control-plane nodes do not meet; a missed run
is made up at boot) and enables the timer. Without systemd it prints the line to put in root's crontab. The
command run is this kubeboot's path: install it where it stays.`,
		Example: "  kubeboot certs auto-renew install\n  systemctl list-timers kubeboot-certs-renew.timer",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fsys, err := rootFS(rootfsOf(cmd))
			if err != nil {
				return err
			}
			binary, err := deps.binary()
			if err != nil {
				return fmt.Errorf("find the path of this kubeboot for the timer to run: %w", err)
			}
			host, err := deps.hostname()
			if err != nil {
				return err
			}
			return autorenew.Install(cmd.Context(), fsys, deps.initSystem(fsys), stdout, binary, within, host)
		},
	}
	install.Flags().DurationVar(&within, "if-expires-within", autorenew.DefaultWithin, "renew the certificates that expire within this long")
	uninstall := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop the daily renewal that install set up",
		Long: `Undo "kubeboot certs auto-renew install": where systemd runs, disable and stop kubeboot-certs-renew.timer and
delete its timer and service from /etc/systemd/system. Without systemd, install wrote nothing: it says which line to
delete from root's crontab. The certificates stay as they are.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fsys, err := rootFS(rootfsOf(cmd))
			if err != nil {
				return err
			}
			return autorenew.Uninstall(cmd.Context(), fsys, deps.initSystem(fsys), stdout)
		},
	}
	cmd.AddCommand(install, uninstall)
	return cmd
}
