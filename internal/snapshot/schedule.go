package snapshot

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/periodic"
)

// Names and places of what `etcd snapshot schedule` installs.
const (
	scheduleName    = "kubeboot-etcd-snapshot"
	ScheduleService = scheduleName + ".service" // in periodic.UnitDir
	ScheduleTimer   = scheduleName + ".timer"
	// CronFile is where the cron line goes on a node without systemd; cron.d ignores names with a dot.
	CronFile = "/etc/cron.d/kubeboot-etcd-snapshot"
	// CronLog collects the scheduled saves' output under cron, which would otherwise mail it.
	CronLog = "/var/log/kubeboot-etcd-snapshot.log"
	// MinInterval is the shortest --every: a snapshot is a full copy of the database.
	MinInterval = time.Minute
	// maxDelay bounds the timer's random delay, which keeps the control-plane nodes' saves apart.
	maxDelay = 5 * time.Minute
)

// Schedule is a periodic `kubeboot etcd snapshot save` into a directory.
type Schedule struct {
	// Executable is the absolute path of the kubeboot that saves.
	Executable string
	// Directory is the absolute path of the directory the archives go to.
	Directory string
	// Keep is save's --keep: how many archives of Directory to keep (0: all).
	Keep int
	// Every is the time between saves; OnCalendar, a systemd calendar specification, is used instead when set.
	Every      time.Duration
	OnCalendar string
	// KeyFile, when set, is the absolute path of the file save reads the encryption key from.
	KeyFile string
	// Args are further arguments of save (--cert-dir DIR, --endpoints URLS, ...), each its own word.
	Args []string
}

// Command is the save the schedule runs, one word per element.
func (s Schedule) Command() []string {
	// The trailing slash makes save treat Directory as a directory before its first archive creates it.
	dir := strings.TrimSuffix(s.Directory, "/") + "/"
	cmd := []string{s.Executable, "etcd", "snapshot", "save", dir, "--keep", strconv.Itoa(s.Keep)}
	if s.KeyFile != "" {
		cmd = append(cmd, "--encryption-key-file", s.KeyFile)
	}
	return append(cmd, s.Args...)
}

// Validate refuses a schedule that cannot be written into a unit file or a crontab line as it is meant.
func (s Schedule) Validate() error {
	switch {
	case s.Every != 0 && s.OnCalendar != "":
		return errors.New("--every and --on-calendar: pass one")
	case s.OnCalendar == "" && s.Every < MinInterval:
		return hint.With(fmt.Errorf("--every %s: shorter than %s", periodic.DurationFlag(s.Every), periodic.DurationFlag(MinInterval)), "every save copies the whole database: pass --every 1m or longer")
	case s.OnCalendar == "" && s.Every%time.Second != 0:
		return fmt.Errorf("--every %s: pass whole seconds", s.Every)
	case s.Keep < 0:
		return fmt.Errorf("--keep %d: must be 0 (keep all) or more", s.Keep)
	}
	if err := wordOK("--on-calendar", s.OnCalendar); err != nil {
		return err
	}
	for _, f := range []struct{ name, path string }{{"the path of this kubeboot", s.Executable}, {"DIRECTORY", s.Directory}, {"--encryption-key-file", s.KeyFile}} {
		if f.path != "" && !path.IsAbs(f.path) {
			return fmt.Errorf("%s %q: not an absolute path", f.name, f.path)
		}
		if err := wordOK(f.name, f.path); err != nil {
			return err
		}
	}
	if s.Executable == "" || s.Directory == "" {
		return errors.New("a schedule needs the path of kubeboot and a directory")
	}
	for _, a := range s.Args {
		if err := wordOK("argument", a); err != nil {
			return err
		}
	}
	return nil
}

// wordOK refuses what a crontab line cannot carry as it is (a newline or another control character, and %), in
// the units too, so that a schedule is the same under systemd and under cron.
func wordOK(name, s string) error {
	if i := periodic.CronUnsafe(s); i >= 0 {
		return hint.With(fmt.Errorf("%s %q: holds %q, which a unit file or a crontab line cannot carry", name, s, s[i]),
			"use a path without %, newlines or control characters")
	}
	return nil
}

// Units renders the service that saves once and the timer that starts it.
func (s Schedule) Units() ([]nodefs.File, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s.job().Units()
}

// job is the schedule as the node runs it.
func (s Schedule) job() periodic.Job {
	j := periodic.Job{
		Name:             scheduleName,
		WrittenBy:        "kubeboot etcd snapshot schedule",
		Description:      fmt.Sprintf("Save a snapshot of etcd with the PKI into %s (kubeboot)", s.Directory),
		TimerDescription: fmt.Sprintf("Save a snapshot of etcd %s (kubeboot)", s.When()),
		ServiceOptions:   []string{"Nice=10", "IOSchedulingClass=idle"},
		Command:          s.Command(),
		Every:            s.Every,
		OnCalendar:       s.OnCalendar,
		RandomizedDelay:  min(s.Every/10, maxDelay),
		PersistentNote:   "A save missed while the node was down is made at boot.",
		Log:              CronLog,
	}
	if s.OnCalendar != "" {
		j.RandomizedDelay = maxDelay
	}
	return j
}

// When says when the schedule saves: "every 6h", "on calendar daily".
func (s Schedule) When() string {
	if s.OnCalendar != "" {
		return "on calendar " + s.OnCalendar
	}
	return "every " + periodic.DurationFlag(s.Every)
}

// CronLine renders the line of /etc/cron.d/kubeboot-etcd-snapshot (user field root) that saves at the
// interval; cron has no calendar specifications and runs evenly only the intervals that divide an hour or a day.
func (s Schedule) CronLine() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	if s.OnCalendar != "" {
		return "", hint.With(errors.New("--on-calendar is a systemd calendar specification, and cron has none"), "use --every")
	}
	when, err := cronTimes(s.Every)
	if err != nil {
		return "", err
	}
	return s.job().CronLine(when, "root")
}

// CommandLine is Command as a shell reads it, for cron and for people.
func (s Schedule) CommandLine() string {
	return periodic.CommandLine(s.Command())
}

// cronTimes are the five time fields of a crontab line that runs every d.
func cronTimes(d time.Duration) (string, error) {
	if when, ok := periodic.CronEvery(d); ok {
		return when, nil
	}
	var works []string
	for _, i := range periodic.CronIntervals() {
		works = append(works, periodic.DurationFlag(i))
	}
	return "", hint.With(fmt.Errorf("--every %s: cron cannot run it evenly", periodic.DurationFlag(d)),
		"without systemd, pass one of --every "+strings.Join(works, ", "))
}
