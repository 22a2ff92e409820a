package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/periodic"
	"kubeboot.dev/kubeboot/internal/snapshot"
)

// Defaults of `etcd snapshot schedule`.
const (
	defaultScheduleEvery = 6 * time.Hour
	defaultScheduleKeep  = 7
)

type scheduleOptions struct {
	every      time.Duration
	onCalendar string
	keep       int
	keyFile    string
	key        string // refused: it would be written into the unit or the crontab
	print      bool
	remove     bool
	kubeconfig string
	configFile string
}

func newSnapshotScheduleCmd(stdout io.Writer, f *etcdFlags, deps snapshotDeps, cmdCtx cmdContext) *cobra.Command {
	var o scheduleOptions
	cmd := &cobra.Command{
		Use:   "schedule [DIRECTORY]",
		Short: "Save snapshots at an interval: a systemd timer where systemd runs, otherwise a cron line to install",
		Long: `Save snapshots into DIRECTORY (the default is ` + DefaultSnapshotDir + `) at an interval, with
"kubeboot etcd snapshot save DIRECTORY --keep N" run by this kubeboot's path: install it where it stays.

Where systemd runs (/run/systemd/system exists) it writes ` + snapshot.ScheduleService + ` and
` + snapshot.ScheduleTimer + ` into ` + periodic.UnitDir + ` and enables the timer: a save every --every after
boot and after the last save, or at the times of --on-calendar (a systemd calendar specification; a save missed
while the node was down is made at boot), each with a small random delay. Without systemd it installs nothing and
prints the line for ` + snapshot.CronFile + `: cron runs evenly only intervals that divide an hour or a
day, and has no calendar.

The scheduled save is given --cert-dir, --endpoints, --timeout, --kubeconfig, --config and --rootfs as they are
given here. It reads the encryption key from --encryption-key-file, which must be mode 0600 or stricter;
--encryption-key is refused, since the key would be written into the unit or the crontab. Before it installs
anything the command checks that this node has the etcd client certificate a save uses. --print prints the units
(or the cron line) and installs nothing; --remove disables the timer and deletes the units.`,
		Example: `  kubeboot etcd snapshot schedule --every 6h --keep 28 --encryption-key-file /etc/kubeboot/snapshot.key
  kubeboot etcd snapshot schedule /backup/etcd --on-calendar '*-*-* 02:30:00'
  systemctl list-timers ` + snapshot.ScheduleTimer + `
  kubeboot etcd snapshot schedule --print > ` + snapshot.CronFile + `   # without systemd`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := cmdCtx(cmd)
			defer cancel()
			fsys, err := rootFS(f.rootfs)
			if err != nil {
				return err
			}
			_, systemd := kubelet.DetectInitSystem(fsys).(kubelet.Systemd)
			if o.remove {
				if err := o.checkRemove(cmd, args); err != nil {
					return err
				}
				return removeSchedule(ctx, stdout, fsys, systemd, deps.run)
			}
			s, err := o.schedule(cmd, f, args, deps)
			if err != nil {
				return err
			}
			if !systemd {
				return cronSchedule(stdout, fsys, f.certDir, s, o)
			}
			if s.OnCalendar != "" {
				if err := deps.run(ctx, "systemd-analyze", "calendar", s.OnCalendar); err != nil {
					return hint.With(fmt.Errorf("--on-calendar %q: %w", s.OnCalendar, err),
						"pass a systemd calendar specification (man systemd.time), such as daily or '*-*-* 02:30:00'")
				}
			}
			if o.print {
				return printUnits(stdout, s)
			}
			if err := checkNodeCanSave(stdout, fsys, f.certDir, o.kubeconfig, o.configFile); err != nil {
				return err
			}
			return installSchedule(ctx, stdout, fsys, s, deps.run)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.every, "every", defaultScheduleEvery, "save at this interval, at least 1m (without systemd: 1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h or 24h)")
	fl.StringVar(&o.onCalendar, "on-calendar", "", "save at the times of this systemd calendar specification instead of --every (systemd only; see man systemd.time)")
	fl.IntVar(&o.keep, "keep", defaultScheduleKeep, "keep this many of DIRECTORY's archives, deleting the oldest (0: keep all)")
	fl.StringVar(&o.keyFile, "encryption-key-file", "", "encrypt the archives with the key in this file (mode 0600 or stricter), read at every save")
	fl.StringVar(&o.key, "encryption-key", "", "refused: the key would be written into the unit or the crontab; use --encryption-key-file")
	_ = fl.MarkHidden("encryption-key")
	fl.BoolVar(&o.print, "print", false, "print the units (without systemd, the cron line) and install nothing")
	fl.BoolVar(&o.remove, "remove", false, "disable the timer and delete the units")
	fl.StringVar(&o.kubeconfig, "kubeconfig", config.AdminKubeconfigFile, "the kubeconfig the scheduled save reads kube-system/kubeadm-config with (under --rootfs)")
	fl.StringVar(&o.configFile, "config", "", "the kubeadm configuration file the scheduled save reads the ClusterConfiguration from, instead of the cluster")
	return cmd
}

// checkRemove refuses what --remove does not take.
func (o *scheduleOptions) checkRemove(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("--remove takes no DIRECTORY (%s): it removes the schedule, and the archives stay", args[0])
	}
	for _, name := range []string{"every", "on-calendar", "keep", "encryption-key-file", "encryption-key", "print", "kubeconfig", "config"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--remove and --%s: --remove takes no other flag of schedule", name)
		}
	}
	return nil
}

// schedule checks the flags and makes the schedule they ask for.
func (o *scheduleOptions) schedule(cmd *cobra.Command, f *etcdFlags, args []string, deps snapshotDeps) (snapshot.Schedule, error) {
	var s snapshot.Schedule
	fl := cmd.Flags()
	if fl.Changed("encryption-key") {
		return s, hint.With(errors.New("--encryption-key: a scheduled save would carry the key in its unit file or crontab line, readable by anyone who can read those"),
			"put the key in a file only root reads (chmod 600 FILE) and pass --encryption-key-file FILE")
	}
	if fl.Changed("every") && fl.Changed("on-calendar") {
		return s, errors.New("--every and --on-calendar: pass one")
	}
	s.Every, s.OnCalendar, s.Keep = o.every, o.onCalendar, o.keep
	if o.onCalendar != "" {
		s.Every = 0
	}
	dir := DefaultSnapshotDir
	if len(args) == 1 {
		dir = args[0]
	}
	var err error
	if s.Directory, err = filepath.Abs(dir); err != nil {
		return s, err
	}
	if o.keyFile != "" {
		if s.KeyFile, err = filepath.Abs(o.keyFile); err != nil {
			return s, err
		}
		if err := checkKeyFile(s.KeyFile); err != nil {
			return s, err
		}
	}
	if o.configFile != "" {
		if _, _, err := clusterConfigFile(o.configFile); err != nil {
			return s, err
		}
	}
	if s.Args, err = o.saveArgs(cmd, f); err != nil {
		return s, err
	}
	if s.Executable, err = deps.executable(); err != nil {
		return s, fmt.Errorf("find the path of this kubeboot for the schedule to run: %w", err)
	}
	return s, s.Validate()
}

// saveArgs are the flags given here that the scheduled save needs to be this command's save: paths made absolute,
// since neither systemd nor cron runs it in this directory.
func (o *scheduleOptions) saveArgs(cmd *cobra.Command, f *etcdFlags) ([]string, error) {
	var args []string
	abs := func(flag, p string) error {
		a, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("--%s %s: %w", flag, p, err)
		}
		args = append(args, "--"+flag, a)
		return nil
	}
	fl := cmd.Flags()
	if fl.Changed("cert-dir") {
		if err := abs("cert-dir", f.certDir); err != nil {
			return nil, err
		}
	}
	if fl.Changed("endpoints") {
		args = append(args, "--endpoints", strings.Join(f.endpoints, ","))
	}
	if fl.Changed("timeout") {
		args = append(args, "--timeout", f.timeout.String())
	}
	if fl.Changed("kubeconfig") {
		if err := abs("kubeconfig", o.kubeconfig); err != nil {
			return nil, err
		}
	}
	if o.configFile != "" {
		if err := abs("config", o.configFile); err != nil {
			return nil, err
		}
	}
	if f.rootfs != "" {
		if err := abs("rootfs", f.rootfs); err != nil {
			return nil, err
		}
	}
	return args, nil
}

// checkKeyFile refuses a key file the scheduled save could not use, or that others can read.
func checkKeyFile(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return hint.With(fmt.Errorf("--encryption-key-file: %w", err), "pass the file holding the key; `kubeboot certs certificate-key` prints a new one")
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("--encryption-key-file %s: not a regular file", file)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return hint.With(fmt.Errorf("--encryption-key-file %s: mode %04o lets others than its owner read or change the key", file, perm),
			"chmod 600 "+file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--encryption-key-file: %w", err)
	}
	if _, err := copycerts.ParseKey(strings.TrimSpace(string(b))); err != nil {
		return fmt.Errorf("--encryption-key-file %s: %w", file, err)
	}
	return nil
}

// checkNodeCanSave refuses a node without the etcd client certificate a save connects with, and warns when the
// saves would find no ClusterConfiguration.
func checkNodeCanSave(out io.Writer, fsys nodefs.FS, certDir, kubeconfig, configFile string) error {
	if _, err := etcd.ClientTLS(fsys, certDir); err != nil {
		return hint.With(fmt.Errorf("this node cannot save a snapshot: %w", err),
			"schedule snapshots on a control-plane node with stacked etcd, or pass --cert-dir; nothing was installed")
	}
	if configFile == "" && !fsys.Exists(kubeconfig) {
		fmt.Fprintf(out, "[snapshot] WARNING: no %s: the scheduled archives will hold no ClusterConfiguration (pass --kubeconfig or --config)\n", kubeconfig)
	}
	return nil
}

// cronSchedule prints the cron line that saves on a node without systemd: alone with --print, so that the output
// can be the cron file, and otherwise with where it goes.
func cronSchedule(out io.Writer, fsys nodefs.FS, certDir string, s snapshot.Schedule, o scheduleOptions) error {
	if s.OnCalendar != "" {
		return hint.With(fmt.Errorf("--on-calendar %q: this node does not run systemd (no /run/systemd/system), and cron has no calendar", s.OnCalendar),
			"use --every")
	}
	line, err := s.CronLine()
	if err != nil {
		return err
	}
	if o.print {
		fmt.Fprintln(out, line)
		return nil
	}
	if err := checkNodeCanSave(out, fsys, certDir, o.kubeconfig, o.configFile); err != nil {
		return err
	}
	fmt.Fprintf(out, "[snapshot] this node does not run systemd (no /run/systemd/system): nothing was installed. To save a snapshot %s, put\n"+
		"this line in %s (mode 0644, owned by root; `kubeboot etcd snapshot schedule --print` prints it alone):\n\n%s\n",
		s.When(), snapshot.CronFile, line)
	return nil
}

// printUnits prints the units that would be installed, each after a comment naming its file.
func printUnits(out io.Writer, s snapshot.Schedule) error {
	units, err := s.Units()
	if err != nil {
		return err
	}
	for i, u := range units {
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "# %s\n%s", u.Path, u.Data)
	}
	return nil
}

// installSchedule writes the units and enables the timer; a timer that was installed already is restarted, so
// that a new interval applies now.
func installSchedule(ctx context.Context, out io.Writer, fsys nodefs.FS, s snapshot.Schedule, run kubelet.Runner) error {
	units, err := s.Units()
	if err != nil {
		return err
	}
	timer := path.Join(periodic.UnitDir, snapshot.ScheduleTimer)
	replaced := fsys.Exists(timer)
	if err := fsys.WriteTogether(units...); err != nil {
		return fmt.Errorf("write %s and %s: %w", snapshot.ScheduleService, snapshot.ScheduleTimer, err)
	}
	fmt.Fprintf(out, "[snapshot] wrote %s and %s\n", units[0].Path, units[1].Path)
	undo := "the units are written: fix the cause and run schedule again, or remove them with --remove"
	if err := (kubelet.Systemd{Run: run}).EnableNow(ctx, snapshot.ScheduleTimer); err != nil {
		return hint.With(err, undo)
	}
	if replaced {
		if err := run(ctx, "systemctl", "restart", snapshot.ScheduleTimer); err != nil {
			return hint.With(fmt.Errorf("restart %s for its new schedule: %w", snapshot.ScheduleTimer, err), undo)
		}
	}
	fmt.Fprintf(out, "[snapshot] enabled %s: %s it runs %s\n", snapshot.ScheduleTimer, s.When(), s.CommandLine())
	fmt.Fprintf(out, "[snapshot] see its runs with `systemctl list-timers %s` and `journalctl -u %s`; `systemctl start %s` saves one now\n",
		snapshot.ScheduleTimer, snapshot.ScheduleService, snapshot.ScheduleService)
	return nil
}

// removeSchedule disables the timer and deletes the units; the archives stay.
func removeSchedule(ctx context.Context, out io.Writer, fsys nodefs.FS, systemd bool, run kubelet.Runner) error {
	if !systemd {
		fmt.Fprintf(out, "[snapshot] this node does not run systemd (no /run/systemd/system): schedule installed nothing here. "+
			"Delete %s if you put the cron line there\n", snapshot.CronFile)
		return nil
	}
	service, timer := path.Join(periodic.UnitDir, snapshot.ScheduleService), path.Join(periodic.UnitDir, snapshot.ScheduleTimer)
	if !fsys.Exists(service) && !fsys.Exists(timer) {
		fmt.Fprintf(out, "[snapshot] no schedule to remove: neither %s nor %s exists\n", service, timer)
		return nil
	}
	disabled := fsys.Exists(timer)
	if err := (kubelet.Systemd{Run: run}).DisableAndRemove(ctx, fsys, snapshot.ScheduleTimer, timer, service); err != nil {
		return err
	}
	if disabled {
		fmt.Fprintf(out, "[snapshot] disabled and stopped %s\n", snapshot.ScheduleTimer)
	}
	fmt.Fprintf(out, "[snapshot] deleted %s and %s; the archives stay where they are\n", service, timer)
	return nil
}
