// Package autorenew installs the daily renewal of a control-plane node's certificates: a systemd service and
// timer that run `kubeboot certs renew all --if-expires-within WINDOW --restart`, which does nothing on the days
// nothing is due; or, on a node without systemd, the crontab line that does the same.
package autorenew

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"path"
	"time"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/periodic"
)

// Names of the units, in periodic.UnitDir.
const (
	name    = "kubeboot-certs-renew"
	Service = name + ".service"
	Timer   = name + ".timer"
	// DefaultWithin is how long before their expiry certificates are renewed: 30 days, the window in which
	// check-expiration warns, leaves a month of daily tries.
	DefaultWithin = 720 * time.Hour
)

// spread is how far the runs of the control-plane nodes are scattered after midnight, so that they rarely meet:
// when they do, the later one refuses to restart while the earlier one's components are down, and tries again the
// next day, well within the window.
const spread = 6 * time.Hour

// Command is the command that renews what is due and restarts what reads it, one word per element.
func Command(binary string, within time.Duration) []string {
	return []string{binary, "certs", "renew", "all", "--if-expires-within", periodic.DurationFlag(within), "--restart"}
}

// job is the daily renewal as the node runs it.
func job(binary string, within time.Duration) periodic.Job {
	return periodic.Job{
		Name:      name,
		WrittenBy: "kubeboot certs auto-renew install",
		Description: fmt.Sprintf("Renew this node's Kubernetes certificates that expire within %s, and restart the components that read them",
			periodic.DurationFlag(within)),
		TimerDescription: "Daily renewal of this node's Kubernetes certificates that are due",
		Command:          Command(binary, within),
		OnCalendar:       "daily",
		RandomizedDelay:  spread,
		Log:              "/var/log/kubeboot-certs-renew.log",
	}
}

// Units renders the service and the timer, for binary (this kubeboot's path) renewing what expires within within.
func Units(binary string, within time.Duration) ([]nodefs.File, error) {
	return job(binary, within).Units()
}

// CronLine is the line of root's crontab that runs Command daily at a time within spread after midnight that
// hostname decides, so that the control-plane nodes run at different times, as the timer's random delay does.
func CronLine(binary string, within time.Duration, hostname string) (string, error) {
	h := fnv.New32a()
	h.Write([]byte(hostname))
	minutes := h.Sum32() % uint32(spread/time.Minute)
	return job(binary, within).CronLine(fmt.Sprintf("%d %d * * *", minutes%60, minutes/60), "")
}

// Enabler enables a unit and starts it now (kubelet.Systemd).
type Enabler interface {
	EnableNow(ctx context.Context, unit string) error
}

// Install installs the daily renewal on the node: where the init system can enable units (systemd), it writes
// the units under fsys and enables the timer; otherwise it prints the crontab line to use.
func Install(ctx context.Context, fsys nodefs.FS, sys kubelet.InitSystem, out io.Writer, binary string, within time.Duration, hostname string) error {
	enabler, ok := sys.(Enabler)
	if !ok {
		line, err := CronLine(binary, within, hostname)
		if err != nil {
			return cannotRun(err)
		}
		fmt.Fprintf(out, "[auto-renew] This node does not run systemd (init system: %s). Add this line to root's crontab (crontab -e as root),\n"+
			"so that the certificates that expire within %s are renewed every day:\n\n%s\n", sys.Name(), periodic.DurationFlag(within), line)
		return nil
	}
	units, err := Units(binary, within)
	if err != nil {
		return cannotRun(err)
	}
	if err := fsys.WriteTogether(units...); err != nil {
		return fmt.Errorf("write the units %s and %s: %w", Service, Timer, err)
	}
	fmt.Fprintf(out, "[auto-renew] Wrote %s and %s\n", units[0].Path, units[1].Path)
	if err := enabler.EnableNow(ctx, Timer); err != nil {
		return err
	}
	fmt.Fprintf(out, "[auto-renew] Enabled %s through %s: every day it runs %q\n", Timer, sys.Name(), periodic.CommandLine(Command(binary, within)))
	fmt.Fprintf(out, "[auto-renew] See its runs with `systemctl list-timers %s` and `journalctl -u %s`\n", Timer, Service)
	return nil
}

// Disabler undoes an Enabler's work on a unit and deletes its files (kubelet.Systemd).
type Disabler interface {
	DisableAndRemove(ctx context.Context, fsys nodefs.FS, unit, unitFile string, files ...string) error
}

// Uninstall removes the daily renewal from the node: where the init system can disable units (systemd), it
// disables and stops the timer and deletes both units; otherwise it says which crontab line to delete. The
// certificates stay as they are.
func Uninstall(ctx context.Context, fsys nodefs.FS, sys kubelet.InitSystem, out io.Writer) error {
	disabler, ok := sys.(Disabler)
	if !ok {
		fmt.Fprintf(out, "[auto-renew] This node does not run systemd (init system: %s): install put nothing here. "+
			"Delete the line that runs \"certs renew all --if-expires-within\" from root's crontab (crontab -e as root), if you added it\n", sys.Name())
		return nil
	}
	service, timer := path.Join(periodic.UnitDir, Service), path.Join(periodic.UnitDir, Timer)
	if !fsys.Exists(service) && !fsys.Exists(timer) {
		fmt.Fprintf(out, "[auto-renew] Nothing to uninstall: neither %s nor %s exists\n", service, timer)
		return nil
	}
	if err := disabler.DisableAndRemove(ctx, fsys, Timer, timer, service); err != nil {
		return err
	}
	fmt.Fprintf(out, "[auto-renew] Disabled %s and deleted %s and %s: the certificates are renewed only by hand now (kubeboot certs renew)\n", Timer, timer, service)
	return nil
}

// cannotRun says why the renewal cannot run this kubeboot: its path, the only word of the command that varies,
// cannot be written into a unit file or a crontab line.
func cannotRun(err error) error {
	return hint.With(fmt.Errorf("the daily renewal cannot run this kubeboot: %w", err),
		"install kubeboot where its path holds no such character, and run it from there")
}
