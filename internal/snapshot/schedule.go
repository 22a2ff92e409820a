package snapshot

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// Names and places of what `etcd snapshot schedule` installs.
const (
	UnitDir         = "/etc/systemd/system"
	ScheduleService = "kubeboot-etcd-snapshot.service"
	ScheduleTimer   = "kubeboot-etcd-snapshot.timer"
	// CronFile is where the cron line goes on a node without systemd; cron.d ignores names with a dot.
	CronFile = "/etc/cron.d/kubeboot-etcd-snapshot"
	// CronLog collects the scheduled saves' output under cron, which would otherwise mail it.
	CronLog = "/var/log/kubeboot-etcd-snapshot.log"
	// MinInterval is the shortest --every: a snapshot is a full copy of the database.
	MinInterval = time.Minute
	// maxDelay bounds the timer's random delay, which keeps the control-plane nodes' saves apart.
	maxDelay = 5 * time.Minute
)

// Intervals cron runs evenly: minutes that divide an hour, hours that divide a day.
var (
	cronMinutes = []int{1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30}
	cronHours   = []int{1, 2, 3, 4, 6, 8, 12, 24}
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
		return hint.With(fmt.Errorf("--every %s: shorter than %s", durationFlag(s.Every), durationFlag(MinInterval)), "every save copies the whole database: pass --every 1m or longer")
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

// wordOK refuses what neither a unit file nor a crontab line can carry as it is: a newline or another control
// character ends or breaks the line, and % is a specifier to systemd and a newline to cron.
func wordOK(name, s string) error {
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '%' }); i >= 0 {
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
	words := s.Command()
	for i, w := range words {
		words[i] = systemdWord(w)
	}
	service := fmt.Sprintf(`# Written by "kubeboot etcd snapshot schedule".
[Unit]
Description=Save a snapshot of etcd with the PKI into %[1]s (kubeboot)
Wants=network-online.target
After=network-online.target kubelet.service

[Service]
Type=oneshot
Nice=10
IOSchedulingClass=idle
ExecStart=%[2]s
`, s.Directory, strings.Join(words, " "))

	var when string
	if s.OnCalendar != "" {
		when = fmt.Sprintf("OnCalendar=%s\nRandomizedDelaySec=%s\n# A save missed while the node was down is made at boot.\nPersistent=true\n", s.OnCalendar, systemdSpan(maxDelay))
	} else {
		when = fmt.Sprintf("OnBootSec=%[1]s\nOnUnitActiveSec=%[1]s\nRandomizedDelaySec=%[2]s\n", systemdSpan(s.Every), systemdSpan(min(s.Every/10, maxDelay)))
	}
	timer := fmt.Sprintf(`# Written by "kubeboot etcd snapshot schedule".
[Unit]
Description=Save a snapshot of etcd %[1]s (kubeboot)

[Timer]
%[2]s
[Install]
WantedBy=timers.target
`, s.When(), when)
	return []nodefs.File{
		{Path: path.Join(UnitDir, ScheduleService), Mode: 0o644, Data: []byte(service)},
		{Path: path.Join(UnitDir, ScheduleTimer), Mode: 0o644, Data: []byte(timer)},
	}, nil
}

// When says when the schedule saves: "every 6h", "on calendar daily".
func (s Schedule) When() string {
	if s.OnCalendar != "" {
		return "on calendar " + s.OnCalendar
	}
	return "every " + durationFlag(s.Every)
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
	return fmt.Sprintf("%s root %s >>%s 2>&1", when, s.CommandLine(), CronLog), nil
}

// CommandLine is Command as a shell reads it, for cron and for people.
func (s Schedule) CommandLine() string {
	words := s.Command()
	for i, w := range words {
		words[i] = shellWord(w)
	}
	return strings.Join(words, " ")
}

// cronTimes are the five time fields of a crontab line that runs every d.
func cronTimes(d time.Duration) (string, error) {
	switch {
	case d%time.Hour == 0 && slices.Contains(cronHours, int(d/time.Hour)):
		if d == 24*time.Hour {
			return "0 0 * * *", nil
		}
		return fmt.Sprintf("0 */%d * * *", d/time.Hour), nil
	case d < time.Hour && d%time.Minute == 0 && slices.Contains(cronMinutes, int(d/time.Minute)):
		return fmt.Sprintf("*/%d * * * *", d/time.Minute), nil
	}
	var works []string
	for _, m := range cronMinutes {
		works = append(works, fmt.Sprintf("%dm", m))
	}
	for _, h := range cronHours {
		works = append(works, fmt.Sprintf("%dh", h))
	}
	return "", hint.With(fmt.Errorf("--every %s: cron cannot run it evenly", durationFlag(d)),
		"without systemd, pass one of --every "+strings.Join(works, ", "))
}

// durationFlag writes d as a person gives it: 6h, 1h30m, 90s.
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

// systemdSpan writes d as a systemd time span: "6h", "1h 30min", "36s".
func systemdSpan(d time.Duration) string {
	var parts []string
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "min"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			parts = append(parts, fmt.Sprintf("%d%s", n, u.name))
			d -= n * u.d
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, " ")
}

// plainWord reports whether s is one word as it is, to systemd and to a shell alike.
func plainWord(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:,=+@", r))
	}) < 0
}

// systemdWord quotes s as one word of ExecStart: double quotes, with \ and " escaped, and $ doubled, since
// systemd substitutes $VARIABLES even in quotes.
func systemdWord(s string) string {
	if plainWord(s) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`)
	return `"` + r.Replace(s) + `"`
}

// shellWord quotes s as one word for /bin/sh, which runs cron's command: single quotes, in which nothing is
// special but the quote itself.
func shellWord(s string) string {
	if plainWord(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
