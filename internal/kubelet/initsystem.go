package kubelet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strings"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// Service is the kubelet's service name in every init system kubeadm supports.
const Service = "kubelet"

// systemdRunDir exists only while systemd is PID 1 (sd_booted(3)); a systemctl binary alone proves nothing
// in a container.
const systemdRunDir = "/run/systemd/system"

// InitSystem restarts a service so that it rereads its configuration.
type InitSystem interface {
	Restart(ctx context.Context, service string) error
	Name() string
}

// DetectInitSystem returns systemd when the node runs it, and otherwise an init system that asks the user to
// restart the service.
func DetectInitSystem(fs nodefs.FS) InitSystem {
	if fs.Exists(systemdRunDir) {
		return Systemd{}
	}
	return None{}
}

// Runner runs a command; tests replace exec. RunCommand is the machine's.
type Runner func(ctx context.Context, name string, args ...string) error

// Systemd restarts services with systemctl.
type Systemd struct {
	// Run runs systemctl; nil runs it with os/exec.
	Run Runner
}

// Name implements InitSystem.
func (Systemd) Name() string { return "systemd" }

// Restart reloads unit files first, since kubeadm's packages and users may just have changed the kubelet's
// drop-in, then restarts the service.
func (s Systemd) Restart(ctx context.Context, service string) error {
	run := s.Run
	if run == nil {
		run = RunCommand
	}
	if err := run(ctx, "systemctl", "daemon-reload"); err != nil {
		return fmt.Errorf("reload systemd before restarting %s: %w", service, err)
	}
	if err := run(ctx, "systemctl", "restart", service); err != nil {
		return fmt.Errorf("restart %s (check `systemctl status %s` and `journalctl -u %s`): %w", service, service, service, err)
	}
	return nil
}

// EnableNow loads a unit file just written (daemon-reload), then enables the unit to start at every boot and
// starts it now, as `systemctl enable --now` does.
func (s Systemd) EnableNow(ctx context.Context, unit string) error {
	run := s.Run
	if run == nil {
		run = RunCommand
	}
	if err := run(ctx, "systemctl", "daemon-reload"); err != nil {
		return fmt.Errorf("reload systemd before enabling %s: %w", unit, err)
	}
	if err := run(ctx, "systemctl", "enable", "--now", unit); err != nil {
		return fmt.Errorf("enable %s (check `systemctl status %s`): %w", unit, unit, err)
	}
	return nil
}

// DisableAndRemove undoes EnableNow: it disables unit and stops it (`systemctl disable --now`) while unitFile, its
// file in fsys, exists, then deletes the files (unitFile and those that go with it, such as the service a timer
// starts) and reloads systemd. When disabling fails nothing is deleted.
func (s Systemd) DisableAndRemove(ctx context.Context, fsys nodefs.FS, unit, unitFile string, files ...string) error {
	run := s.Run
	if run == nil {
		run = RunCommand
	}
	if fsys.Exists(unitFile) {
		if err := run(ctx, "systemctl", "disable", "--now", unit); err != nil {
			return hint.With(fmt.Errorf("disable %s: %w", unit, err), "nothing was deleted; check `systemctl status "+unit+"`")
		}
	}
	for _, p := range append([]string{unitFile}, files...) {
		if err := fsys.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", p, err)
		}
	}
	if err := run(ctx, "systemctl", "daemon-reload"); err != nil {
		return fmt.Errorf("reload systemd after deleting its units: %w", err)
	}
	return nil
}

// RunCommand runs a command on this machine; when it fails, the error names the command and holds what it wrote
// to stderr.
func RunCommand(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// None is the init system of a machine without one kubeboot knows (containers, the lab's namespace nodes):
// whatever supervises the kubelet must restart it.
type None struct{}

// Name implements InitSystem.
func (None) Name() string { return "none" }

// Restart implements InitSystem: it cannot restart anything and says so with a *NoInitSystemError.
func (None) Restart(_ context.Context, service string) error {
	return &NoInitSystemError{Service: service}
}

// ErrNoInitSystem matches every *NoInitSystemError with errors.Is.
var ErrNoInitSystem = errors.New("no init system found")

// NoInitSystemError means the service was not restarted; the CLI prints it as an instruction and carries on
// waiting for the kubelet.
type NoInitSystemError struct {
	Service string
}

func (e *NoInitSystemError) Error() string {
	if e.Service == Service {
		return fmt.Sprintf("%v: restart the kubelet yourself so it reads %s", ErrNoInitSystem, config.KubeletConfigFile)
	}
	return fmt.Sprintf("%v: restart %s yourself", ErrNoInitSystem, e.Service)
}

// Is makes errors.Is(err, ErrNoInitSystem) true.
func (e *NoInitSystemError) Is(target error) bool { return target == ErrNoInitSystem }

// Restart restarts the kubelet through sys so it reads the files just written. Without an init system that is not
// an error: the line printed to out says who must restart it (a supervisor that watches the files, or the user).
// A dry run only says what it would do.
func Restart(ctx context.Context, sys InitSystem, out io.Writer, dryRun bool) error {
	if dryRun {
		fmt.Fprintln(out, "  dry run: would restart the kubelet")
		return nil
	}
	err := sys.Restart(ctx, Service)
	if errors.Is(err, ErrNoInitSystem) {
		fmt.Fprintf(out, "  %v\n", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("restart the kubelet through %s: %w", sys.Name(), err)
	}
	fmt.Fprintf(out, "  restarted the kubelet through %s\n", sys.Name())
	return nil
}
