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
	"strconv"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// Names and places of the units.
const (
	UnitDir = "/etc/systemd/system"
	Service = "kubeboot-certs-renew.service"
	Timer   = "kubeboot-certs-renew.timer"
	// DefaultWithin is how long before their expiry certificates are renewed: 30 days, the window in which
	// check-expiration warns, leaves a month of daily tries.
	DefaultWithin = 720 * time.Hour
)

// spread is how far the runs of the control-plane nodes are scattered after midnight, so that they rarely meet:
// when they do, the later one refuses to restart while the earlier one's components are down, and tries again the
// next day, well within the window.
const spread = 6 * time.Hour

// Command is the command line that renews what is due and restarts what reads it.
func Command(binary string, within time.Duration) string {
	return fmt.Sprintf("%s certs renew all --if-expires-within %s --restart", quote(binary), durationFlag(within))
}

// quote writes a path as one word for systemd's ExecStart and for a shell: as it is, or double-quoted.
func quote(s string) string {
	if strings.ContainsAny(s, " \t\n\"'\\$`%;&|<>()*?[]#~") {
		return strconv.Quote(s)
	}
	return s
}

// durationFlag writes d as a person would give it: 720h, 1h30m, 90s.
func durationFlag(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Units renders the service and the timer, for binary (this kubeboot's path) renewing what expires within within.
func Units(binary string, within time.Duration) []nodefs.File {
	service := fmt.Sprintf(`# Written by "kubeboot certs auto-renew install".
[Unit]
Description=Renew this node's Kubernetes certificates that expire within %[1]s, and restart the components that read them
Wants=network-online.target
After=network-online.target kubelet.service

[Service]
Type=oneshot
ExecStart=%[2]s
`, durationFlag(within), Command(binary, within))
	timer := fmt.Sprintf(`# Written by "kubeboot certs auto-renew install".
[Unit]
Description=Daily renewal of this node's Kubernetes certificates that are due

[Timer]
OnCalendar=daily
RandomizedDelaySec=%s
Persistent=true

[Install]
WantedBy=timers.target
`, durationFlag(spread))
	return []nodefs.File{
		{Path: path.Join(UnitDir, Service), Mode: 0o644, Data: []byte(service)},
		{Path: path.Join(UnitDir, Timer), Mode: 0o644, Data: []byte(timer)},
	}
}

// CronLine is the line of root's crontab that runs Command daily at a time within spread after midnight that
// hostname decides, so that the control-plane nodes run at different times, as the timer's random delay does.
func CronLine(binary string, within time.Duration, hostname string) string {
	h := fnv.New32a()
	h.Write([]byte(hostname))
	minutes := h.Sum32() % uint32(spread/time.Minute)
	return fmt.Sprintf("%d %d * * * %s >>/var/log/kubeboot-certs-renew.log 2>&1", minutes%60, minutes/60, Command(binary, within))
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
		fmt.Fprintf(out, "[auto-renew] This node does not run systemd (init system: %s). Add this line to root's crontab (crontab -e as root),\n"+
			"so that the certificates that expire within %s are renewed every day:\n\n%s\n", sys.Name(), durationFlag(within), CronLine(binary, within, hostname))
		return nil
	}
	units := Units(binary, within)
	if err := fsys.WriteTogether(units...); err != nil {
		return fmt.Errorf("write the units %s and %s: %w", Service, Timer, err)
	}
	fmt.Fprintf(out, "[auto-renew] Wrote %s and %s\n", units[0].Path, units[1].Path)
	if err := enabler.EnableNow(ctx, Timer); err != nil {
		return err
	}
	fmt.Fprintf(out, "[auto-renew] Enabled %s through %s: every day it runs %q\n", Timer, sys.Name(), Command(binary, within))
	fmt.Fprintf(out, "[auto-renew] See its runs with `systemctl list-timers %s` and `journalctl -u %s`\n", Timer, Service)
	return nil
}
