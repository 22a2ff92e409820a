// Package periodic renders what makes a node run a command again and again: a systemd oneshot service with the
// timer that starts it, or, on a node without systemd, a crontab line. It only renders; writing the files,
// enabling the timer and printing the line are its callers'.
package periodic

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// UnitDir is where the units go.
const UnitDir = "/etc/systemd/system"

// Job is a command that a node runs periodically.
type Job struct {
	// Name names the units: Name.service runs Command once, Name.timer starts it.
	Name string
	// WrittenBy is the kubeboot command that writes the units, named in the comment that heads them.
	WrittenBy string
	// Description describes the service, TimerDescription the timer.
	Description, TimerDescription string
	// ServiceOptions are further lines of the service's [Service] section, such as "Nice=10".
	ServiceOptions []string
	// Command runs, one word per element, the first an absolute path.
	Command []string
	// Every is the time between runs, counted from boot and from the last run. OnCalendar, a systemd calendar
	// specification, is used instead when set; a run it missed while the node was down is made at boot.
	Every      time.Duration
	OnCalendar string
	// RandomizedDelay delays each run by a random time up to it, which keeps the nodes' runs apart.
	RandomizedDelay time.Duration
	// PersistentNote, when set, is a comment above Persistent=true that says what a missed run is to the reader.
	PersistentNote string
	// Log is the file a crontab line appends the command's output to, which cron would otherwise mail.
	Log string
}

// Units renders the service that runs Command once and the timer that starts it, both mode 0644 in UnitDir.
// Both run after the network is online and after the kubelet, as kubeboot's commands on a node need.
func (j Job) Units() ([]nodefs.File, error) {
	switch {
	case j.Every != 0 && j.OnCalendar != "":
		return nil, errors.New("a timer runs at an interval or on a calendar, not both")
	case j.OnCalendar == "" && (j.Every < time.Second || j.Every%time.Second != 0):
		return nil, fmt.Errorf("every %s: a timer runs at whole seconds, 1s or longer", j.Every)
	}
	execStart, err := execStart(j.Command)
	if err != nil {
		return nil, err
	}
	for _, v := range []string{j.WrittenBy, j.Description, j.TimerDescription, j.OnCalendar, j.PersistentNote} {
		if err := carried(v, lineBreak, "a unit file"); err != nil {
			return nil, err
		}
	}

	var service strings.Builder
	fmt.Fprintf(&service, `# Written by "%s".
[Unit]
Description=%s
Wants=network-online.target
After=network-online.target kubelet.service

[Service]
Type=oneshot
`, j.WrittenBy, unitValue(j.Description))
	for _, o := range j.ServiceOptions {
		fmt.Fprintln(&service, o)
	}
	fmt.Fprintf(&service, "ExecStart=%s\n", execStart)

	var timer strings.Builder
	fmt.Fprintf(&timer, `# Written by "%s".
[Unit]
Description=%s

[Timer]
`, j.WrittenBy, unitValue(j.TimerDescription))
	if j.OnCalendar != "" {
		fmt.Fprintf(&timer, "OnCalendar=%s\n", unitValue(j.OnCalendar))
	} else {
		fmt.Fprintf(&timer, "OnBootSec=%[1]s\nOnUnitActiveSec=%[1]s\n", systemdSpan(j.Every))
	}
	if j.RandomizedDelay > 0 {
		fmt.Fprintf(&timer, "RandomizedDelaySec=%s\n", systemdSpan(j.RandomizedDelay))
	}
	if j.OnCalendar != "" {
		if j.PersistentNote != "" {
			fmt.Fprintf(&timer, "# %s\n", j.PersistentNote)
		}
		fmt.Fprintln(&timer, "Persistent=true")
	}
	fmt.Fprint(&timer, "\n[Install]\nWantedBy=timers.target\n")

	return []nodefs.File{
		{Path: path.Join(UnitDir, j.Name+".service"), Mode: 0o644, Data: []byte(service.String())},
		{Path: path.Join(UnitDir, j.Name+".timer"), Mode: 0o644, Data: []byte(timer.String())},
	}, nil
}

// CronLine renders the crontab line that runs Command at times, the line's five time fields, appending its output
// to Log. user is the user field of the files in /etc/cron.d; a user's own crontab (crontab -e) has none: pass "".
func (j Job) CronLine(times, user string) (string, error) {
	if len(j.Command) == 0 {
		return "", errors.New("a crontab line needs a command")
	}
	for _, w := range append(slices.Clone(j.Command), j.Log) {
		if err := carried(w, CronUnsafe, "a crontab line"); err != nil {
			return "", err
		}
	}
	line := times + " "
	if user != "" {
		line += user + " "
	}
	line += CommandLine(j.Command)
	if j.Log != "" {
		line += " >>" + shellWord(j.Log) + " 2>&1"
	}
	return line, nil
}

// CommandLine is argv as /bin/sh reads it: for cron, and for people to read and paste.
func CommandLine(argv []string) string {
	words := make([]string, len(argv))
	for i, w := range argv {
		words[i] = shellWord(w)
	}
	return strings.Join(words, " ")
}

// CronUnsafe returns the index in s of the first character that a crontab line cannot carry as it is, or -1:
// a newline or another control character ends or breaks the line, and cron reads % as a newline, with an escape
// that not every cron knows.
func CronUnsafe(s string) int {
	return strings.IndexFunc(s, func(r rune) bool { return isControl(r) || r == '%' })
}

// lineBreak returns the index in s of the first control character, which ends or breaks a line of a unit file,
// or -1. (% is escaped in a unit file.)
func lineBreak(s string) int {
	return strings.IndexFunc(s, isControl)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// carried refuses s when unsafe finds in it a character that where cannot carry.
func carried(s string, unsafe func(string) int, where string) error {
	if i := unsafe(s); i >= 0 {
		return fmt.Errorf("%q: holds %q, which %s cannot carry", s, s[i], where)
	}
	return nil
}

// execStart writes argv as the value of a service's ExecStart. It refuses a first word that is not an absolute
// path: systemd reads -, @, +, ! and : in front of it as prefixes, quoted or not.
func execStart(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("a service needs a command")
	}
	if !path.IsAbs(argv[0]) {
		return "", fmt.Errorf("%q: not an absolute path, which ExecStart needs first", argv[0])
	}
	words := make([]string, len(argv))
	for i, w := range argv {
		if err := carried(w, lineBreak, "a unit file"); err != nil {
			return "", err
		}
		words[i] = systemdWord(w)
	}
	return strings.Join(words, " "), nil
}

// unitValue escapes % in a value of a unit file, where it starts a specifier.
func unitValue(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}

// plainWord reports whether s is one word as it is, to systemd and to a shell alike.
func plainWord(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:,=+@", r))
	}) < 0
}

// systemdWord quotes s as one word of ExecStart: double quotes, with \ and " escaped, $ doubled, since systemd
// substitutes $VARIABLES even in quotes, and % doubled, since systemd expands specifiers even in quotes.
func systemdWord(s string) string {
	if plainWord(s) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

// shellWord quotes s as one word for /bin/sh: single quotes, in which nothing is special but the quote itself.
func shellWord(s string) string {
	if plainWord(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Intervals a crontab line runs evenly: minutes that divide an hour, hours that divide a day.
var (
	cronMinutes = []int{1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30}
	cronHours   = []int{1, 2, 3, 4, 6, 8, 12, 24}
)

// CronEvery returns the five time fields of a crontab line that runs every d, and false when cron cannot run d
// evenly: it can only the intervals of CronIntervals.
func CronEvery(d time.Duration) (string, bool) {
	switch {
	case d%time.Hour == 0 && slices.Contains(cronHours, int(d/time.Hour)):
		if d == 24*time.Hour {
			return "0 0 * * *", true
		}
		return fmt.Sprintf("0 */%d * * *", d/time.Hour), true
	case d < time.Hour && d%time.Minute == 0 && slices.Contains(cronMinutes, int(d/time.Minute)):
		return fmt.Sprintf("*/%d * * * *", d/time.Minute), true
	}
	return "", false
}

// CronIntervals are the intervals a crontab line runs evenly, shortest first.
func CronIntervals() []time.Duration {
	var ds []time.Duration
	for _, m := range cronMinutes {
		ds = append(ds, time.Duration(m)*time.Minute)
	}
	for _, h := range cronHours {
		ds = append(ds, time.Duration(h)*time.Hour)
	}
	return ds
}

// DurationFlag writes d as a person gives it to a flag: 720h, 1h30m, 90s.
func DurationFlag(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// systemdSpan writes d, in whole seconds, as a systemd time span: "6h", "1h 30min", "36s".
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
