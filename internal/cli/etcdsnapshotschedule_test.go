package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/periodic"
	"kubeboot.dev/kubeboot/internal/snapshot"
)

const testKubeboot = "/usr/local/bin/kubeboot"

// fakeCommands records the commands schedule runs; fail makes the command starting so fail.
type fakeCommands struct {
	calls []string
	fail  map[string]error
}

func (f *fakeCommands) run(_ context.Context, name string, args ...string) error {
	call := strings.Join(append([]string{name}, args...), " ")
	f.calls = append(f.calls, call)
	for prefix, err := range f.fail {
		if strings.HasPrefix(call, prefix) {
			return err
		}
	}
	return nil
}

func runSchedule(t *testing.T, cmds *fakeCommands, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	deps := snapshotDeps{
		connect: func(nodefs.FS, string, etcd.Options) (snapshotEtcd, error) {
			return nil, errors.New("schedule does not connect")
		},
		executable: func() (string, error) { return testKubeboot, nil },
		run:        cmds.run,
	}
	cmd := newEtcdCmdWithDeps(&buf, hostEtcdConnect, deps)
	addGlobalFlags(cmd)
	cmd.SetArgs(append([]string{"snapshot", "schedule"}, args...))
	cmd.SetOut(&buf)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	return buf.String(), err
}

// withSystemd makes root a node that runs systemd.
func withSystemd(t *testing.T, root string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// withKubeconfig gives root the admin kubeconfig a save reads the ClusterConfiguration with.
func withKubeconfig(t *testing.T, root string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "etc/kubernetes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, config.AdminKubeconfigFile), []byte("kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

// keyFile writes an encryption key to a file of mode perm.
func keyFile(t *testing.T, key string, perm os.FileMode) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "snapshot.key")
	if err := os.WriteFile(file, []byte(key+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return file
}

var (
	serviceFile = filepath.Join(periodic.UnitDir, snapshot.ScheduleService)
	timerFile   = filepath.Join(periodic.UnitDir, snapshot.ScheduleTimer)
)

// unitsOf reads the units under root; missing ones are absent from the map.
func unitsOf(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, p := range []string{serviceFile, timerFile} {
		fi, err := os.Stat(filepath.Join(root, p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %04o, want 0644", p, fi.Mode().Perm())
		}
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		got[p] = string(b)
	}
	return got
}

func TestEtcdSnapshotScheduleWithSystemd(t *testing.T) {
	root := withKubeconfig(t, withSystemd(t, pkiRoot(t)))
	key := keyFile(t, strings.Repeat("ab", 32), 0o600)
	dir := filepath.Join(t.TempDir(), "snapshots")
	cmds := &fakeCommands{}
	out, err := runSchedule(t, cmds, dir, "--rootfs", root, "--every", "1h", "--keep", "24", "--encryption-key-file", key,
		"--cert-dir", "/etc/kubernetes/pki", "--endpoints", "https://10.0.0.1:2379")
	if err != nil {
		t.Fatalf("%v (hint %q)", err, hint.Of(err))
	}
	save := testKubeboot + " etcd snapshot save " + dir + "/ --keep 24 --encryption-key-file " + key +
		" --cert-dir /etc/kubernetes/pki --endpoints https://10.0.0.1:2379 --rootfs " + root
	want := `[snapshot] wrote /etc/systemd/system/kubeboot-etcd-snapshot.service and /etc/systemd/system/kubeboot-etcd-snapshot.timer
[snapshot] enabled kubeboot-etcd-snapshot.timer: every 1h it runs ` + save + `
[snapshot] see its runs with ` + "`systemctl list-timers kubeboot-etcd-snapshot.timer` and `journalctl -u kubeboot-etcd-snapshot.service`; " +
		"`systemctl start kubeboot-etcd-snapshot.service` saves one now\n"
	if d := cmp.Diff(want, out); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"systemctl daemon-reload", "systemctl enable --now kubeboot-etcd-snapshot.timer"}, cmds.calls); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	units := unitsOf(t, root)
	if !strings.Contains(units[serviceFile], "\nType=oneshot\n") || !strings.HasSuffix(units[serviceFile], "\nExecStart="+save+"\n") {
		t.Errorf("%s:\n%s", serviceFile, units[serviceFile])
	}
	if !strings.Contains(units[timerFile], "\nOnBootSec=1h\nOnUnitActiveSec=1h\nRandomizedDelaySec=5min\n") ||
		!strings.HasSuffix(units[timerFile], "\nWantedBy=timers.target\n") {
		t.Errorf("%s:\n%s", timerFile, units[timerFile])
	}

	// Again, at the times of a calendar: the calendar is checked, the units replaced and the timer restarted.
	cmds = &fakeCommands{}
	out, err = runSchedule(t, cmds, "--rootfs", root, "--on-calendar", "*-*-* 02:30:00")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"systemd-analyze calendar *-*-* 02:30:00", "systemctl daemon-reload",
		"systemctl enable --now kubeboot-etcd-snapshot.timer", "systemctl restart kubeboot-etcd-snapshot.timer"}, cmds.calls); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	save = testKubeboot + " etcd snapshot save /var/lib/kubeboot/snapshots/ --keep 7 --rootfs " + root
	if !strings.Contains(out, "[snapshot] enabled kubeboot-etcd-snapshot.timer: on calendar *-*-* 02:30:00 it runs "+save+"\n") {
		t.Errorf("output:\n%s", out)
	}
	units = unitsOf(t, root)
	if !strings.HasSuffix(units[serviceFile], "\nExecStart="+save+"\n") ||
		!strings.Contains(units[timerFile], "\nOnCalendar=*-*-* 02:30:00\nRandomizedDelaySec=5min\n# A save missed while the node was down is made at boot.\nPersistent=true\n") {
		t.Errorf("units:\n%s\n%s", units[serviceFile], units[timerFile])
	}

	// systemctl fails: the error says so, and what to do with the units written.
	cmds = &fakeCommands{fail: map[string]error{"systemctl enable": errors.New("exit status 1")}}
	_, err = runSchedule(t, cmds, "--rootfs", root)
	if want := "enable kubeboot-etcd-snapshot.timer (check `systemctl status kubeboot-etcd-snapshot.timer`): exit status 1"; err == nil || err.Error() != want ||
		hint.Of(err) != "the units are written: fix the cause and run schedule again, or remove them with --remove" {
		t.Errorf("failing enable: %v (hint %q)\nwant %s", err, hint.Of(err), want)
	}
}

func TestEtcdSnapshotScheduleWithoutSystemd(t *testing.T) {
	root := pkiRoot(t) // no /run/systemd/system, and no admin.conf
	cmds := &fakeCommands{}
	configFile := filepath.Join(t.TempDir(), "kubeadm.yaml")
	if err := os.WriteFile(configFile, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: lab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runSchedule(t, cmds, "/backup/etcd", "--rootfs", root, "--every", "15m", "--config", configFile)
	if err != nil {
		t.Fatalf("%v (hint %q)", err, hint.Of(err))
	}
	want := `[snapshot] this node does not run systemd (no /run/systemd/system): nothing was installed. To save a snapshot every 15m, put
this line in /etc/cron.d/kubeboot-etcd-snapshot (mode 0644, owned by root; ` + "`kubeboot etcd snapshot schedule --print`" + ` prints it alone):

*/15 * * * * root ` + testKubeboot + ` etcd snapshot save /backup/etcd/ --keep 7 --config ` + configFile + ` --rootfs ` + root + ` >>/var/log/kubeboot-etcd-snapshot.log 2>&1
`
	if d := cmp.Diff(want, out); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if len(cmds.calls) != 0 {
		t.Errorf("ran %v", cmds.calls)
	}
	for _, p := range []string{"etc/systemd", "etc/cron.d"} {
		if _, err := os.Stat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want nothing written", p, err)
		}
	}

	// Without admin.conf or --config the saves would hold no ClusterConfiguration: said, not refused.
	out, err = runSchedule(t, cmds, "--rootfs", root)
	if err != nil || !strings.HasPrefix(out, "[snapshot] WARNING: no /etc/kubernetes/admin.conf: the scheduled archives will hold no ClusterConfiguration (pass --kubeconfig or --config)\n") {
		t.Errorf("without admin.conf: %v\n%s", err, out)
	}
}

func TestEtcdSnapshotSchedulePrint(t *testing.T) {
	// --print installs nothing and needs no PKI: it may prepare another node.
	root := withSystemd(t, t.TempDir())
	cmds := &fakeCommands{}
	out, err := runSchedule(t, cmds, "/backup/etcd", "--rootfs", root, "--every", "90m", "--keep", "0", "--print")
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot.Schedule{Executable: testKubeboot, Directory: "/backup/etcd", Every: 90 * time.Minute, Args: []string{"--rootfs", root}}
	units, err := s.Units()
	if err != nil {
		t.Fatal(err)
	}
	want := "# " + serviceFile + "\n" + string(units[0].Data) + "\n# " + timerFile + "\n" + string(units[1].Data)
	if d := cmp.Diff(want, out); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if len(cmds.calls) != 0 || len(unitsOf(t, root)) != 0 {
		t.Errorf("--print ran %v and wrote %v", cmds.calls, unitsOf(t, root))
	}

	// Without systemd the output is the cron file.
	root = t.TempDir()
	out, err = runSchedule(t, cmds, "/backup/etcd", "--rootfs", root, "--every", "24h", "--print")
	if want := "0 0 * * * root " + testKubeboot + " etcd snapshot save /backup/etcd/ --keep 7 --rootfs " + root + " >>/var/log/kubeboot-etcd-snapshot.log 2>&1\n"; err != nil || out != want {
		t.Errorf("--print without systemd: %v\n%q\nwant %q", err, out, want)
	}
}

func TestEtcdSnapshotScheduleRemove(t *testing.T) {
	root := withSystemd(t, t.TempDir())
	cmds := &fakeCommands{}
	out, err := runSchedule(t, cmds, "--rootfs", root, "--remove")
	if want := "[snapshot] no schedule to remove: neither " + serviceFile + " nor " + timerFile + " exists\n"; err != nil || out != want || len(cmds.calls) != 0 {
		t.Errorf("nothing to remove: %v %v\n%s", err, cmds.calls, out)
	}

	for _, p := range []string{serviceFile, timerFile} {
		if err := (nodefs.FS{Root: root}).WriteFile(p, []byte("unit"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A failing disable deletes nothing.
	cmds = &fakeCommands{fail: map[string]error{"systemctl disable": errors.New("exit status 1")}}
	_, err = runSchedule(t, cmds, "--rootfs", root, "--remove")
	if want := "disable kubeboot-etcd-snapshot.timer: exit status 1"; err == nil || err.Error() != want ||
		hint.Of(err) != "nothing was deleted; check `systemctl status kubeboot-etcd-snapshot.timer`" || len(unitsOf(t, root)) != 2 {
		t.Errorf("failing disable: %v (hint %q), units %v", err, hint.Of(err), unitsOf(t, root))
	}

	cmds = &fakeCommands{}
	out, err = runSchedule(t, cmds, "--rootfs", root, "--remove")
	if err != nil {
		t.Fatal(err)
	}
	want := `[snapshot] disabled and stopped kubeboot-etcd-snapshot.timer
[snapshot] deleted /etc/systemd/system/kubeboot-etcd-snapshot.service and /etc/systemd/system/kubeboot-etcd-snapshot.timer; the archives stay where they are
`
	if d := cmp.Diff(want, out); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"systemctl disable --now kubeboot-etcd-snapshot.timer", "systemctl daemon-reload"}, cmds.calls); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	if units := unitsOf(t, root); len(units) != 0 {
		t.Errorf("left %v", units)
	}

	out, err = runSchedule(t, cmds, "--rootfs", t.TempDir(), "--remove")
	if want := "[snapshot] this node does not run systemd (no /run/systemd/system): schedule installed nothing here. Delete /etc/cron.d/kubeboot-etcd-snapshot if you put the cron line there\n"; err != nil || out != want {
		t.Errorf("without systemd: %v\n%s", err, out)
	}
}

func TestEtcdSnapshotScheduleRefusals(t *testing.T) {
	systemd := withKubeconfig(t, withSystemd(t, pkiRoot(t)))
	cron := withKubeconfig(t, pkiRoot(t))
	noPKI := withSystemd(t, t.TempDir())
	key := strings.Repeat("ab", 32)
	const modeHint = "chmod 600 "
	open, malformed := keyFile(t, key, 0o644), keyFile(t, "abc", 0o600)
	const cronWorks = "without systemd, pass one of --every 1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h"
	for _, tc := range []struct {
		name      string
		root      string
		args      []string
		fail      map[string]error
		want, why string
	}{
		{"--encryption-key", systemd, []string{"--encryption-key", key}, nil,
			"--encryption-key: a scheduled save would carry the key in its unit file or crontab line, readable by anyone who can read those",
			"put the key in a file only root reads (chmod 600 FILE) and pass --encryption-key-file FILE"},
		{"key file readable by others", systemd, []string{"--encryption-key-file", open}, nil,
			"--encryption-key-file " + open + ": mode 0644 lets others than its owner read or change the key", modeHint + open},
		{"key file missing", systemd, []string{"--encryption-key-file", "/nonexistent/snapshot.key"}, nil,
			"--encryption-key-file: stat /nonexistent/snapshot.key: no such file or directory", "pass the file holding the key; `kubeboot certs certificate-key` prints a new one"},
		{"key file malformed", systemd, []string{"--encryption-key-file", malformed}, nil, "--encryption-key-file " + malformed +
			": malformed certificate key: it must be 64 hexadecimal characters (32 random bytes), got 3 characters; `kubeboot certs certificate-key` makes one", ""},
		{"--every too short", systemd, []string{"--every", "30s"}, nil,
			"--every 30s: shorter than 1m", "every save copies the whole database: pass --every 1m or longer"},
		{"--every cron cannot run", cron, []string{"--every", "7m"}, nil, "--every 7m: cron cannot run it evenly", cronWorks},
		{"--every and --on-calendar", systemd, []string{"--every", "1h", "--on-calendar", "daily"}, nil, "--every and --on-calendar: pass one", ""},
		{"--on-calendar without systemd", cron, []string{"--on-calendar", "daily"}, nil,
			`--on-calendar "daily": this node does not run systemd (no /run/systemd/system), and cron has no calendar`, "use --every"},
		{"--on-calendar systemd refuses", systemd, []string{"--on-calendar", "every tuesday"},
			map[string]error{"systemd-analyze": errors.New("systemd-analyze calendar every tuesday: exit status 1: Failed to parse calendar specification 'every tuesday': Invalid argument")},
			`--on-calendar "every tuesday": systemd-analyze calendar every tuesday: exit status 1: Failed to parse calendar specification 'every tuesday': Invalid argument`,
			"pass a systemd calendar specification (man systemd.time), such as daily or '*-*-* 02:30:00'"},
		{"% in the directory", systemd, []string{"/backup/100%"}, nil,
			`DIRECTORY "/backup/100%": holds '%', which a unit file or a crontab line cannot carry`, "use a path without %, newlines or control characters"},
		{"no etcd client certificate", noPKI, nil, nil, "this node cannot save a snapshot: read the etcd CA: ",
			"schedule snapshots on a control-plane node with stacked etcd, or pass --cert-dir; nothing was installed"},
		{"no etcd client certificate, without systemd", t.TempDir(), nil, nil, "this node cannot save a snapshot: read the etcd CA: ",
			"schedule snapshots on a control-plane node with stacked etcd, or pass --cert-dir; nothing was installed"},
		{"--remove with --every", systemd, []string{"--remove", "--every", "1h"}, nil, "--remove and --every: --remove takes no other flag of schedule", ""},
		{"--remove with a directory", systemd, []string{"--remove", "/backup"}, nil, "--remove takes no DIRECTORY (/backup): it removes the schedule, and the archives stay", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds := &fakeCommands{fail: tc.fail}
			_, err := runSchedule(t, cmds, append(tc.args, "--rootfs", tc.root)...)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || hint.Of(err) != tc.why {
				t.Errorf("error = %v (hint %q)\nwant    %s (hint %q)", err, hint.Of(err), tc.want, tc.why)
			}
			if len(unitsOf(t, tc.root)) != 0 {
				t.Errorf("wrote the units")
			}
			for _, c := range cmds.calls {
				if strings.HasPrefix(c, "systemctl") {
					t.Errorf("ran %s", c)
				}
			}
		})
	}
}
