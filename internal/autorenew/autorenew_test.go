package autorenew

import (
	"bytes"
	"context"
	"errors"
	"path"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

func TestUnits(t *testing.T) {
	files := map[string][]byte{}
	for _, f := range Units("/usr/local/bin/kubeboot", DefaultWithin) {
		if path.Dir(f.Path) != UnitDir || f.Mode != 0o644 {
			t.Errorf("%s: mode %o, want %s/*, 0644", f.Path, f.Mode, UnitDir)
		}
		files[path.Base(f.Path)] = f.Data
	}
	golden.Dir(t, "testdata/units", files)
}

func TestCommand(t *testing.T) {
	tests := []struct {
		binary string
		within time.Duration
		want   string
	}{
		{"/usr/local/bin/kubeboot", 720 * time.Hour, "/usr/local/bin/kubeboot certs renew all --if-expires-within 720h --restart"},
		{"/usr/bin/kubeboot", 90 * time.Minute, "/usr/bin/kubeboot certs renew all --if-expires-within 1h30m --restart"},
		{"/opt/kube boot/kubeboot", 45 * time.Second, `"/opt/kube boot/kubeboot" certs renew all --if-expires-within 45s --restart`},
	}
	for _, tt := range tests {
		if got := Command(tt.binary, tt.within); got != tt.want {
			t.Errorf("Command(%q, %s) = %q, want %q", tt.binary, tt.within, got, tt.want)
		}
	}
}

func TestCronLine(t *testing.T) {
	a := CronLine("/usr/local/bin/kubeboot", DefaultWithin, "cp-1")
	if want := "12 5 * * * /usr/local/bin/kubeboot certs renew all --if-expires-within 720h --restart >>/var/log/kubeboot-certs-renew.log 2>&1"; a != want {
		t.Errorf("CronLine(cp-1) = %q\nwant %q", a, want)
	}
	if b := CronLine("/usr/local/bin/kubeboot", DefaultWithin, "cp-2"); b == a {
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
	for _, f := range Units("/usr/local/bin/kubeboot", DefaultWithin) {
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
	err := Install(t.Context(), fsys, sys, &out, "/usr/local/bin/kubeboot", DefaultWithin, "cp-1")
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
	if fsys.Exists(UnitDir) {
		t.Errorf("wrote %s without systemd", UnitDir)
	}
}
