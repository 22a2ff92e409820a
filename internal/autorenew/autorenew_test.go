package autorenew

import (
	"bytes"
	"context"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/periodic"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

func TestUnits(t *testing.T) {
	units, err := Units("/usr/local/bin/kubeboot", DefaultWithin)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range units { // their place and mode are periodic's
		files[path.Base(f.Path)] = f.Data
	}
	golden.Dir(t, "testdata/units", files)
}

func TestCommand(t *testing.T) {
	tests := []struct {
		within time.Duration
		want   string // the flag's value
	}{
		{720 * time.Hour, "720h"},
		{90 * time.Minute, "1h30m"},
		{45 * time.Second, "45s"},
	}
	for _, tt := range tests {
		want := []string{"/usr/bin/kubeboot", "certs", "renew", "all", "--if-expires-within", tt.want, "--restart"}
		if got := Command("/usr/bin/kubeboot", tt.within); !cmp.Equal(got, want) {
			t.Errorf("Command(/usr/bin/kubeboot, %s) = %q, want %q", tt.within, got, want)
		}
	}
}

// TestQuoted checks that a path systemd and the shell read specially reaches them as one word, unchanged.
func TestQuoted(t *testing.T) {
	const binary = "/opt/kube boot/$HOME/100%/kubeboot"
	units, err := Units(binary, DefaultWithin)
	if err != nil {
		t.Fatal(err)
	}
	const execStart = `ExecStart="/opt/kube boot/$$HOME/100%%/kubeboot" certs renew all --if-expires-within 720h --restart` + "\n"
	if !strings.HasSuffix(string(units[0].Data), execStart) {
		t.Errorf("%s:\n%s\nwant it to end in %s", units[0].Path, units[0].Data, execStart)
	}

	line, err := CronLine("/opt/kube boot/$HOME/kubeboot", DefaultWithin, "cp-1")
	if want := `12 5 * * * '/opt/kube boot/$HOME/kubeboot' certs renew all --if-expires-within 720h --restart >>/var/log/kubeboot-certs-renew.log 2>&1`; err != nil || line != want {
		t.Errorf("CronLine() = %s, %v\nwant         %s", line, err, want)
	}
}

func TestCronLine(t *testing.T) {
	a, err := CronLine("/usr/local/bin/kubeboot", DefaultWithin, "cp-1")
	if want := "12 5 * * * /usr/local/bin/kubeboot certs renew all --if-expires-within 720h --restart >>/var/log/kubeboot-certs-renew.log 2>&1"; err != nil || a != want {
		t.Errorf("CronLine(cp-1) = %q, %v\nwant %q", a, err, want)
	}
	if b, _ := CronLine("/usr/local/bin/kubeboot", DefaultWithin, "cp-2"); b == a {
		t.Errorf("cp-1 and cp-2 renew at the same time: %q", b)
	}
}

// fakeSystemd records what it enables.
type fakeSystemd struct {
	kubelet.None
	enabled []string
	err     error
}

func (f *fakeSystemd) Name() string { return "systemd" }

func (f *fakeSystemd) EnableNow(_ context.Context, unit string) error {
	f.enabled = append(f.enabled, unit)
	return f.err
}

func TestInstallWithSystemd(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	sys := &fakeSystemd{}
	var out bytes.Buffer
	if err := Install(t.Context(), fsys, sys, &out, "/usr/local/bin/kubeboot", DefaultWithin, "cp-1"); err != nil {
		t.Fatal(err)
	}
	units, err := Units("/usr/local/bin/kubeboot", DefaultWithin)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range units {
		got, err := fsys.ReadFile(f.Path)
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("%s: %v\n%s", f.Path, err, got)
		}
	}
	if !cmp.Equal(sys.enabled, []string{"kubeboot-certs-renew.timer"}) {
		t.Errorf("enabled %q, want the timer", sys.enabled)
	}
	want := `[auto-renew] Wrote /etc/systemd/system/kubeboot-certs-renew.service and /etc/systemd/system/kubeboot-certs-renew.timer
[auto-renew] Enabled kubeboot-certs-renew.timer through systemd: every day it runs "/usr/local/bin/kubeboot certs renew all --if-expires-within 720h --restart"
[auto-renew] See its runs with ` + "`systemctl list-timers kubeboot-certs-renew.timer` and `journalctl -u kubeboot-certs-renew.service`" + `
`
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}

	boom := errors.New("systemctl enable --now kubeboot-certs-renew.timer: exit status 1")
	sys.err = boom
	err = Install(t.Context(), fsys, sys, &out, "/usr/local/bin/kubeboot", DefaultWithin, "cp-1")
	if !errors.Is(err, boom) {
		t.Errorf("Install with a failing systemctl: %v", err)
	}
}

func TestInstallWithoutSystemd(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	var out bytes.Buffer
	if err := Install(t.Context(), fsys, kubelet.None{}, &out, "/usr/local/bin/kubeboot", DefaultWithin, "cp-1"); err != nil {
		t.Fatal(err)
	}
	want := `[auto-renew] This node does not run systemd (init system: none). Add this line to root's crontab (crontab -e as root),
so that the certificates that expire within 720h are renewed every day:

12 5 * * * /usr/local/bin/kubeboot certs renew all --if-expires-within 720h --restart >>/var/log/kubeboot-certs-renew.log 2>&1
`
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if fsys.Exists(periodic.UnitDir) {
		t.Errorf("wrote %s without systemd", periodic.UnitDir)
	}
}

// TestInstallRefusals checks that a path of kubeboot that a unit file or a crontab line cannot carry is refused,
// with nothing written or enabled.
func TestInstallRefusals(t *testing.T) {
	const why = "install kubeboot where its path holds no such character, and run it from there"
	for _, tc := range []struct {
		name   string
		sys    kubelet.InitSystem
		binary string
		want   string
	}{
		{"newline, systemd", &fakeSystemd{}, "/opt/kube\nboot", `the daily renewal cannot run this kubeboot: "/opt/kube\nboot": holds '\n', which a unit file cannot carry`},
		{"newline, cron", kubelet.None{}, "/opt/kube\nboot", `the daily renewal cannot run this kubeboot: "/opt/kube\nboot": holds '\n', which a crontab line cannot carry`},
		{"percent, cron", kubelet.None{}, "/opt/100%/kubeboot", `the daily renewal cannot run this kubeboot: "/opt/100%/kubeboot": holds '%', which a crontab line cannot carry`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := nodefs.FS{Root: t.TempDir()}
			var out bytes.Buffer
			err := Install(t.Context(), fsys, tc.sys, &out, tc.binary, DefaultWithin, "cp-1")
			if err == nil || err.Error() != tc.want || hint.Of(err) != why {
				t.Errorf("Install() error = %v (hint %q)\nwant             %s", err, hint.Of(err), tc.want)
			}
			if out.Len() != 0 || fsys.Exists(periodic.UnitDir) {
				t.Errorf("printed %q, or wrote %s", out.String(), periodic.UnitDir)
			}
			if sd, ok := tc.sys.(*fakeSystemd); ok && len(sd.enabled) != 0 {
				t.Errorf("enabled %q", sd.enabled)
			}
		})
	}
}

// TestUninstall installs the units and takes them away again through kubelet.Systemd, with systemctl recorded:
// the timer is disabled and stopped, both units are deleted, systemd reloads; a second uninstall finds nothing;
// a systemctl that fails leaves both units in place, and says so.
func TestUninstall(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	var calls []string
	var fail error
	sys := kubelet.Systemd{Run: func(_ context.Context, name string, args ...string) error {
		calls = append(calls, strings.Join(append([]string{name}, args...), " "))
		return fail
	}}
	var out bytes.Buffer
	if err := Install(t.Context(), fsys, sys, &out, "/usr/local/bin/kubeboot", DefaultWithin, "cp-1"); err != nil {
		t.Fatal(err)
	}
	service, timer := path.Join(periodic.UnitDir, Service), path.Join(periodic.UnitDir, Timer)

	fail = errors.New("exit status 1")
	out.Reset()
	err := Uninstall(t.Context(), fsys, sys, &out)
	if err == nil || hint.Of(err) != "nothing was deleted; check `systemctl status kubeboot-certs-renew.timer`" || !fsys.Exists(service) || !fsys.Exists(timer) {
		t.Fatalf("Uninstall with a failing systemctl: %v (hint %q); service there %v, timer there %v", err, hint.Of(err), fsys.Exists(service), fsys.Exists(timer))
	}

	fail = nil
	calls = nil
	out.Reset()
	if err := Uninstall(t.Context(), fsys, sys, &out); err != nil {
		t.Fatal(err)
	}
	if fsys.Exists(service) || fsys.Exists(timer) {
		t.Errorf("units left after uninstall: service %v, timer %v", fsys.Exists(service), fsys.Exists(timer))
	}
	if d := cmp.Diff([]string{"systemctl disable --now kubeboot-certs-renew.timer", "systemctl daemon-reload"}, calls); d != "" {
		t.Errorf("systemctl calls (-want +got):\n%s", d)
	}
	want := "[auto-renew] Disabled kubeboot-certs-renew.timer and deleted /etc/systemd/system/kubeboot-certs-renew.timer and /etc/systemd/system/kubeboot-certs-renew.service: the certificates are renewed only by hand now (kubeboot certs renew)\n"
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}

	calls = nil
	out.Reset()
	if err := Uninstall(t.Context(), fsys, sys, &out); err != nil || len(calls) != 0 || !strings.Contains(out.String(), "Nothing to uninstall") {
		t.Errorf("second uninstall: %v, calls %v, output %q", err, calls, out.String())
	}

	out.Reset()
	if err := Uninstall(t.Context(), fsys, kubelet.None{}, &out); err != nil || !strings.Contains(out.String(), "from root's crontab") {
		t.Errorf("uninstall without systemd: %v, output %q", err, out.String())
	}
}
