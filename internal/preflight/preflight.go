// Package preflight checks that a machine can become (or join) a cluster before anything is changed, with
// kubeadm's check names so --ignore-preflight-errors and existing scripts keep working.
//
// Every check reaches the machine only through Env, so tests run the real check code against fakes.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// MustFix marks a check's error that ignoring the check does not turn into a warning: what it reports would make
// the node fail later whatever the user meant by ignoring it.
func MustFix(err error) error { return &mustFixError{err} }

type mustFixError struct{ error }

func (e *mustFixError) Unwrap() error { return e.error }

// Check is one preflight check. Warnings are printed and never stop kubeboot; errors do unless ignored.
type Check interface {
	// Name is what --ignore-preflight-errors matches, e.g. "Port-6443".
	Name() string
	Check(ctx context.Context) (warnings, errs []error)
}

// Env is everything the checks touch on the machine.
type Env struct {
	// FS reads node files: /etc/kubernetes, the etcd data directory, /proc/sys, /proc/swaps, /run/systemd.
	FS nodefs.FS
	// Listen opens a listener, to find out whether a component's port is free.
	Listen func(network, address string) (net.Listener, error)
	// LookPath finds an executable on PATH.
	LookPath func(file string) (string, error)
	// Output runs a program (looked up on PATH) and returns its standard output; a non-zero exit is an error.
	Output func(ctx context.Context, name string, args ...string) ([]byte, error)
	// DialRuntime connects to the container runtime at a CRI socket.
	DialRuntime func(ctx context.Context, criSocket string) (cri.Runtime, error)
	// Geteuid is the effective user id of kubeboot.
	Geteuid func() int
	// NumCPU is the number of usable CPUs.
	NumCPU func() int
	// MemoryMB is the machine's total RAM in MiB.
	MemoryMB func() (uint64, error)
	// LookupHost resolves a host name.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Getenv reads kubeboot's environment (proxy settings).
	Getenv func(key string) string

	// kubelet, when set, shares one `kubelet --version` among the checks of one list (see shareKubelet).
	kubelet *kubeletProbe
}

// kubeletProbe holds the answer of one `kubelet --version`: three checks of a list need it, and they run at once.
type kubeletProbe struct {
	once    sync.Once
	version *version.Version
	err     error
}

// shareKubelet returns env with one `kubelet --version` for all the checks built from it: each run of the
// program takes about 40 ms of a CPU, and init starts the kubelet right after preflight.
func (env Env) shareKubelet() Env {
	env.kubelet = &kubeletProbe{}
	return env
}

// HostEnv is the real machine, with node files read through fsys.
func HostEnv(fsys nodefs.FS) Env {
	return Env{
		FS:       fsys,
		Listen:   net.Listen,
		LookPath: exec.LookPath,
		Output: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).Output()
		},
		DialRuntime: cri.DialRuntime,
		Geteuid:     os.Geteuid,
		NumCPU:      runtime.NumCPU,
		MemoryMB: func() (uint64, error) {
			var info syscall.Sysinfo_t
			if err := syscall.Sysinfo(&info); err != nil {
				return 0, fmt.Errorf("sysinfo: %w", err)
			}
			return uint64(info.Totalram) * uint64(info.Unit) / 1024 / 1024, nil
		},
		LookupHost: func(ctx context.Context, host string) ([]string, error) {
			// Bounded: a node whose resolver does not answer must not stall init for the resolver's full retry cycle.
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return net.DefaultResolver.LookupHost(ctx, host)
		},
		Getenv: os.Getenv,
	}
}

// Failure is one error of one check.
type Failure struct {
	Check string
	Err   error
}

// Error is returned by Run when checks failed; it lists every failure.
type Error struct {
	Failures []Failure
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("preflight checks failed:\n")
	var names []string
	seen := map[string]bool{}
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\t[ERROR %s]: %v\n", f.Check, f.Err)
		if !seen[f.Check] {
			seen[f.Check] = true
			names = append(names, f.Check)
		}
	}
	fmt.Fprintf(&b, "To ignore these, use --ignore-preflight-errors=%s", strings.Join(names, ","))
	return b.String()
}

// Run executes checks, all at once: they only inspect the machine, and the slow ones wait on other programs
// (`kubelet --version`, run once for all the checks that need it, takes most of a preflight's time; the container
// runtime), so a preflight takes about as long as its slowest check rather than the sum. What they report comes
// out in the checks' order. Warnings, and the errors of ignored checks, are written to w as
// "\t[WARNING <Name>]: <message>" lines, as kubeadm prints them. ignore holds check names compared
// case-insensitively; "all" ignores every check. If any error is left, Run returns an *Error listing all of them.
func Run(ctx context.Context, checks []Check, ignore []string, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("preflight checks interrupted before they ran: %w", err)
	}
	ignored := make(map[string]bool, len(ignore))
	for _, name := range ignore {
		ignored[strings.ToLower(strings.TrimSpace(name))] = true
	}
	type outcome struct{ warnings, errs []error }
	outcomes := make([]outcome, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			warnings, errs := c.Check(ctx)
			outcomes[i] = outcome{warnings, errs}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("preflight checks interrupted: %w", err)
	}
	var failed []Failure
	for i, c := range checks {
		name := c.Name()
		warnings, errs := outcomes[i].warnings, outcomes[i].errs
		if ignored["all"] || ignored[strings.ToLower(name)] {
			var kept []error
			for _, err := range errs {
				if errors.As(err, new(*mustFixError)) {
					kept = append(kept, err)
				} else {
					warnings = append(warnings, err)
				}
			}
			errs = kept
		}
		for _, warning := range warnings {
			fmt.Fprintf(w, "\t[WARNING %s]: %v\n", name, warning)
		}
		for _, err := range errs {
			failed = append(failed, Failure{Check: name, Err: err})
		}
	}
	if len(failed) > 0 {
		return &Error{Failures: failed}
	}
	return nil
}
