package snapshot

import (
	"path"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

// every6h is the schedule of `kubeboot etcd snapshot schedule` with its defaults.
var every6h = Schedule{Executable: "/usr/local/bin/kubeboot", Directory: "/var/lib/kubeboot/snapshots", Keep: 7, Every: 6 * time.Hour}

func TestScheduleUnits(t *testing.T) {
	calendar := every6h
	calendar.Every, calendar.OnCalendar = 0, "*-*-* 02:30:00"
	calendar.KeyFile = "/etc/kubeboot/snapshot.key"
	calendar.Args = []string{"--cert-dir", "/etc/kubernetes/pki", "--endpoints", "https://10.0.0.1:2379,https://10.0.0.2:2379"}
	quoted := every6h
	quoted.Executable, quoted.Directory, quoted.Every = "/opt/kube boot/kubeboot", `/srv/it's "$HOME"\x`, 90*time.Minute
	for name, s := range map[string]Schedule{"every-6h": every6h, "calendar": calendar, "quoted": quoted} {
		t.Run(name, func(t *testing.T) {
			units, err := s.Units()
			if err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{}
			for _, f := range units { // their place and mode are periodic's
				files[path.Base(f.Path)] = f.Data
			}
			golden.Dir(t, "testdata/schedule/"+name, files)
		})
	}
}

func TestScheduleCronLine(t *testing.T) {
	const save = " root /usr/local/bin/kubeboot etcd snapshot save /var/lib/kubeboot/snapshots/ --keep 7"
	const log = " >>/var/log/kubeboot-etcd-snapshot.log 2>&1"
	for _, tc := range []struct {
		name   string
		change func(s *Schedule)
		want   string
	}{
		{"every 6h", func(*Schedule) {}, "0 */6 * * *" + save + log},
		{"every minute", func(s *Schedule) { s.Every = time.Minute }, "*/1 * * * *" + save + log},
		{"every 15m", func(s *Schedule) { s.Every = 15 * time.Minute }, "*/15 * * * *" + save + log},
		{"every 30m", func(s *Schedule) { s.Every = 30 * time.Minute }, "*/30 * * * *" + save + log},
		{"every hour", func(s *Schedule) { s.Every = time.Hour }, "0 */1 * * *" + save + log},
		{"every 12h", func(s *Schedule) { s.Every = 12 * time.Hour }, "0 */12 * * *" + save + log},
		{"daily", func(s *Schedule) { s.Every = 24 * time.Hour }, "0 0 * * *" + save + log},
		{"key file and arguments", func(s *Schedule) {
			s.KeyFile, s.Args = "/etc/kubeboot/snapshot.key", []string{"--cert-dir", "/etc/kubernetes/pki"}
		}, "0 */6 * * *" + save + " --encryption-key-file /etc/kubeboot/snapshot.key --cert-dir /etc/kubernetes/pki" + log},
		{"quoted", func(s *Schedule) { s.Executable, s.Directory = "/opt/kube boot/kubeboot", `/srv/it's "$HOME"` },
			`0 */6 * * * root '/opt/kube boot/kubeboot' etcd snapshot save '/srv/it'\''s "$HOME"/' --keep 7` + log},
		{"trailing slash", func(s *Schedule) { s.Directory = "/backup/" }, "0 */6 * * * root /usr/local/bin/kubeboot etcd snapshot save /backup/ --keep 7" + log},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := every6h
			tc.change(&s)
			got, err := s.CronLine()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("CronLine() = %s\nwant         %s", got, tc.want)
			}
		})
	}
}

func TestScheduleRefusals(t *testing.T) {
	const cronWorks = "without systemd, pass one of --every 1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h"
	for _, tc := range []struct {
		name      string
		change    func(s *Schedule)
		cron      bool // the refusal is cron's alone: the units render
		want, why string
	}{
		{"both", func(s *Schedule) { s.OnCalendar = "daily" }, false, "--every and --on-calendar: pass one", ""},
		{"too often", func(s *Schedule) { s.Every = 30 * time.Second }, false, "--every 30s: shorter than 1m",
			"every save copies the whole database: pass --every 1m or longer"},
		{"fraction of a second", func(s *Schedule) { s.Every = time.Minute + time.Second/2 }, false, "--every 1m0.5s: pass whole seconds", ""},
		{"negative keep", func(s *Schedule) { s.Keep = -1 }, false, "--keep -1: must be 0 (keep all) or more", ""},
		{"relative directory", func(s *Schedule) { s.Directory = "snapshots" }, false, `DIRECTORY "snapshots": not an absolute path`, ""},
		{"relative key file", func(s *Schedule) { s.KeyFile = "key" }, false, `--encryption-key-file "key": not an absolute path`, ""},
		{"percent", func(s *Schedule) { s.Directory = "/backup/100%" }, false, `DIRECTORY "/backup/100%": holds '%', which a unit file or a crontab line cannot carry`,
			"use a path without %, newlines or control characters"},
		{"newline", func(s *Schedule) { s.KeyFile = "/etc/key\n* * * * * root rm -rf /" }, false,
			`--encryption-key-file "/etc/key\n* * * * * root rm -rf /": holds '\n', which a unit file or a crontab line cannot carry`,
			"use a path without %, newlines or control characters"},
		{"newline in calendar", func(s *Schedule) { s.Every, s.OnCalendar = 0, "daily\nExecStart=/bin/sh" }, false,
			`--on-calendar "daily\nExecStart=/bin/sh": holds '\n', which a unit file or a crontab line cannot carry`,
			"use a path without %, newlines or control characters"},
		{"argument", func(s *Schedule) { s.Args = []string{"--config", "/tmp/a\tb"} }, false,
			`argument "/tmp/a\tb": holds '\t', which a unit file or a crontab line cannot carry`, "use a path without %, newlines or control characters"},
		{"cron: 7m", func(s *Schedule) { s.Every = 7 * time.Minute }, true, "--every 7m: cron cannot run it evenly", cronWorks},
		{"cron: 90m", func(s *Schedule) { s.Every = 90 * time.Minute }, true, "--every 1h30m: cron cannot run it evenly", cronWorks},
		{"cron: 5h", func(s *Schedule) { s.Every = 5 * time.Hour }, true, "--every 5h: cron cannot run it evenly", cronWorks},
		{"cron: 48h", func(s *Schedule) { s.Every = 48 * time.Hour }, true, "--every 48h: cron cannot run it evenly", cronWorks},
		{"cron: 90s", func(s *Schedule) { s.Every = 90 * time.Second }, true, "--every 1m30s: cron cannot run it evenly", cronWorks},
		{"cron: calendar", func(s *Schedule) { s.Every, s.OnCalendar = 0, "daily" }, true,
			"--on-calendar is a systemd calendar specification, and cron has none", "use --every"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := every6h
			tc.change(&s)
			_, err := s.CronLine()
			if err == nil || err.Error() != tc.want || hint.Of(err) != tc.why {
				t.Errorf("CronLine() error = %v (hint %q)\nwant               %s (hint %q)", err, hint.Of(err), tc.want, tc.why)
			}
			_, err = s.Units()
			if tc.cron && err != nil {
				t.Errorf("Units() error = %v; only cron refuses", err)
			}
			if !tc.cron && (err == nil || err.Error() != tc.want) {
				t.Errorf("Units() error = %v\nwant            %s", err, tc.want)
			}
		})
	}
}
