package periodic

import (
	"path"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

// hourly is a job with everything set but the calendar.
var hourly = Job{
	Name:             "kubeboot-test",
	WrittenBy:        "kubeboot test install",
	Description:      "Run the test",
	TimerDescription: "Run the test every hour",
	ServiceOptions:   []string{"Nice=10"},
	Command:          []string{"/usr/local/bin/kubeboot", "test", "--flag", "value"},
	Every:            time.Hour,
	RandomizedDelay:  90 * time.Second,
	Log:              "/var/log/kubeboot-test.log",
}

func TestUnits(t *testing.T) {
	calendar := hourly
	calendar.Every, calendar.OnCalendar, calendar.ServiceOptions = 0, "Mon *-*-* 02:30:00", nil
	calendar.TimerDescription = "Run the test on Mondays"
	noted := calendar
	noted.PersistentNote, noted.RandomizedDelay = "A run missed while the node was down is made at boot.", 0
	// Every character systemd reads in ExecStart, quoted or not, and % in every value.
	quoted := hourly
	quoted.Command = []string{"/opt/kube boot/kubeboot", "test", `it's "$HOME"\n`, "100%", "", "${X}", ";", "a=b"}
	quoted.Description, quoted.TimerDescription = "Run the test at 100% (%n)", "Run the test every 100%"
	for name, j := range map[string]Job{"hourly": hourly, "calendar": calendar, "noted": noted, "quoted": quoted} {
		t.Run(name, func(t *testing.T) {
			units, err := j.Units()
			if err != nil {
				t.Fatal(err)
			}
			if len(units) != 2 || units[0].Path != "/etc/systemd/system/kubeboot-test.service" || units[1].Path != "/etc/systemd/system/kubeboot-test.timer" {
				t.Fatalf("units %v, want kubeboot-test.service and kubeboot-test.timer in %s", units, UnitDir)
			}
			files := map[string][]byte{}
			for _, f := range units {
				if f.Mode != 0o644 {
					t.Errorf("%s: mode %o, want 0644", f.Path, f.Mode)
				}
				files[path.Base(f.Path)] = f.Data
			}
			golden.Dir(t, "testdata/"+name, files)
		})
	}
}

func TestUnitsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(j *Job)
		want   string
	}{
		{"interval and calendar", func(j *Job) { j.OnCalendar = "daily" }, "a timer runs at an interval or on a calendar, not both"},
		{"no interval", func(j *Job) { j.Every = 0 }, "every 0s: a timer runs at whole seconds, 1s or longer"},
		{"fraction of a second", func(j *Job) { j.Every = 1500 * time.Millisecond }, "every 1.5s: a timer runs at whole seconds, 1s or longer"},
		{"no command", func(j *Job) { j.Command = nil }, "a service needs a command"},
		{"relative command", func(j *Job) { j.Command = []string{"kubeboot", "test"} }, `"kubeboot": not an absolute path, which ExecStart needs first`},
		{"prefixed command", func(j *Job) { j.Command = []string{"-/usr/local/bin/kubeboot"} }, `"-/usr/local/bin/kubeboot": not an absolute path, which ExecStart needs first`},
		{"newline in a word", func(j *Job) { j.Command = []string{"/usr/local/bin/kubeboot", "a\nExecStartPre=/bin/sh"} },
			`"a\nExecStartPre=/bin/sh": holds '\n', which a unit file cannot carry`},
		{"tab in the description", func(j *Job) { j.Description = "a\tb" }, `"a\tb": holds '\t', which a unit file cannot carry`},
		{"newline in the calendar", func(j *Job) { j.Every, j.OnCalendar = 0, "daily\nExecStart=/bin/sh" },
			`"daily\nExecStart=/bin/sh": holds '\n', which a unit file cannot carry`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := hourly
			tc.change(&j)
			if _, err := j.Units(); err == nil || err.Error() != tc.want {
				t.Errorf("Units() error = %v\nwant            %s", err, tc.want)
			}
		})
	}
}

func TestCronLine(t *testing.T) {
	for _, tc := range []struct {
		name        string
		change      func(j *Job)
		times, user string
		want        string
	}{
		{"cron.d", func(*Job) {}, "0 */1 * * *", "root",
			"0 */1 * * * root /usr/local/bin/kubeboot test --flag value >>/var/log/kubeboot-test.log 2>&1"},
		{"crontab", func(*Job) {}, "12 5 * * *", "",
			"12 5 * * * /usr/local/bin/kubeboot test --flag value >>/var/log/kubeboot-test.log 2>&1"},
		{"no log", func(j *Job) { j.Log = "" }, "12 5 * * *", "", "12 5 * * * /usr/local/bin/kubeboot test --flag value"},
		{"quoted", func(j *Job) {
			j.Command, j.Log = []string{"/opt/kube boot/kubeboot", `it's "$HOME"\n`, "", "a;b"}, "/var/log/kube boot.log"
		}, "0 0 * * *", "root", `0 0 * * * root '/opt/kube boot/kubeboot' 'it'\''s "$HOME"\n' '' 'a;b' >>'/var/log/kube boot.log' 2>&1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := hourly
			tc.change(&j)
			got, err := j.CronLine(tc.times, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("CronLine() = %s\nwant         %s", got, tc.want)
			}
		})
	}
}

func TestCronLineRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(j *Job)
		want   string
	}{
		{"no command", func(j *Job) { j.Command = nil }, "a crontab line needs a command"},
		{"percent", func(j *Job) { j.Command = []string{"/opt/100%/kubeboot"} }, `"/opt/100%/kubeboot": holds '%', which a crontab line cannot carry`},
		{"newline", func(j *Job) { j.Command = []string{"/usr/local/bin/kubeboot", "a\n* * * * * root rm -rf /"} },
			`"a\n* * * * * root rm -rf /": holds '\n', which a crontab line cannot carry`},
		{"percent in the log", func(j *Job) { j.Log = "/var/log/%d.log" }, `"/var/log/%d.log": holds '%', which a crontab line cannot carry`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := hourly
			tc.change(&j)
			if _, err := j.CronLine("0 0 * * *", "root"); err == nil || err.Error() != tc.want {
				t.Errorf("CronLine() error = %v\nwant               %s", err, tc.want)
			}
		})
	}
}

func TestCronEvery(t *testing.T) {
	for _, tc := range []struct {
		every time.Duration
		want  string // "" when cron cannot
	}{
		{time.Minute, "*/1 * * * *"},
		{15 * time.Minute, "*/15 * * * *"},
		{30 * time.Minute, "*/30 * * * *"},
		{time.Hour, "0 */1 * * *"},
		{12 * time.Hour, "0 */12 * * *"},
		{24 * time.Hour, "0 0 * * *"},
		{7 * time.Minute, ""},
		{90 * time.Minute, ""},
		{5 * time.Hour, ""},
		{48 * time.Hour, ""},
		{90 * time.Second, ""},
		{0, ""},
	} {
		got, ok := CronEvery(tc.every)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("CronEvery(%s) = %q, %t; want %q", tc.every, got, ok, tc.want)
		}
	}
	for _, d := range CronIntervals() {
		if _, ok := CronEvery(d); !ok {
			t.Errorf("CronIntervals() has %s, which CronEvery refuses", d)
		}
	}
}

func TestDurationFlag(t *testing.T) {
	for d, want := range map[time.Duration]string{
		720 * time.Hour:              "720h",
		90 * time.Minute:             "1h30m",
		90 * time.Second:             "1m30s",
		45 * time.Second:             "45s",
		time.Hour + time.Second:      "1h0m1s",
		time.Minute + time.Second/2:  "1m0.5s",
		6*time.Hour + 30*time.Minute: "6h30m",
		0:                            "0s",
	} {
		if got := DurationFlag(d); got != want {
			t.Errorf("DurationFlag(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := CommandLine([]string{"/opt/kube boot/kubeboot", "save", `it's`, "100%", "--keep", "7"})
	if want := `'/opt/kube boot/kubeboot' save 'it'\''s' '100%' --keep 7`; got != want {
		t.Errorf("CommandLine() = %s\nwant            %s", got, want)
	}
}
