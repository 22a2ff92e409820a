// Package build produces what the lab's nodes run for one Kubernetes release: the upstream Kubernetes components,
// etcd, CoreDNS, pause, containerd, crictl and kubeboot as binaries, and the container images kubeadm of that release
// expects as docker-archive tars that containerd imports without a registry. The versions come from kubeboot's
// release table (internal/release). Each release has its own bin, images and stamps directories, so several releases
// stay built side by side; they share the Go build cache. Every step is cached by a stamp of its inputs, so a second
// Ensure with nothing changed takes seconds.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"kubeboot.dev/kubeboot/internal/release"
)

// DefaultStateDir holds bin/VERSION, images/VERSION, stamps/VERSION and generated work modules.
const DefaultStateDir = "/var/lib/kubeboot-lab"

// Options configures Ensure. Zero values take the defaults.
type Options struct {
	StateDir string // default DefaultStateDir
	RepoRoot string // the kubeboot checkout (holds lab/components and cmd/kubeboot); required
	// KubernetesVersion is the release to build, default release.DefaultVersion(). Its minor picks the etcd, CoreDNS
	// and pause versions from the release table.
	KubernetesVersion string
	Log               io.Writer
}

// Image is one image tar and the reference it is tagged with inside it.
type Image struct{ Ref, Tar string }

// Bundle is what Ensure produced.
type Bundle struct {
	Version string // the Kubernetes version
	BinDir  string
	Images  []Image
}

// BinDir is where Ensure puts the binaries of a Kubernetes version: StateDir/bin/VERSION.
func BinDir(stateDir, version string) string { return filepath.Join(stateDir, "bin", version) }

// ImageDir is where Ensure puts the image tars of a Kubernetes version.
func ImageDir(stateDir, version string) string { return filepath.Join(stateDir, "images", version) }

// Ensure builds every binary and image the lab needs, reusing what is current.
func Ensure(ctx context.Context, o Options) (*Bundle, error) {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.KubernetesVersion == "" {
		o.KubernetesVersion = release.DefaultVersion()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.RepoRoot == "" {
		return nil, errors.New("lab build: Options.RepoRoot is empty: set it to the kubeboot checkout")
	}
	// go build runs in the module directories, so relative paths would point elsewhere there.
	for _, p := range []*string{&o.StateDir, &o.RepoRoot} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("lab build: %w", err)
		}
		*p = abs
	}
	ldflags, err := versionLDFlags(o.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	rel, err := release.For(o.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	components := filepath.Join(o.RepoRoot, "lab", "components")
	if _, err := os.Stat(filepath.Join(components, "k8s", "go.mod")); err != nil {
		return nil, fmt.Errorf("lab build: %w (is Options.RepoRoot %q the kubeboot checkout?)", err, o.RepoRoot)
	}
	log := &progress{w: o.Log}
	start := time.Now()

	binDir := BinDir(o.StateDir, o.KubernetesVersion)
	imageDir := ImageDir(o.StateDir, o.KubernetesVersion)
	stampDir := filepath.Join(o.StateDir, "stamps", o.KubernetesVersion)
	for _, d := range []string{binDir, imageDir, stampDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("lab build: %w", err)
		}
	}
	unlock, err := lock(ctx, filepath.Join(o.StateDir, "build.lock"), log)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if err := ensurePackages(ctx, log, hostPackages...); err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	g, err := newGoTool(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}

	groups, err := componentBuilds(ctx, g, components, filepath.Join(o.StateDir, "work"), o.KubernetesVersion, rel, ldflags, log)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	for _, b := range groups {
		if err := b.ensure(ctx, g, binDir, stampDir, log); err != nil {
			return nil, fmt.Errorf("lab build: %w", err)
		}
	}
	if err := buildKubeboot(ctx, g, o.RepoRoot, binDir, log); err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}

	tools, err := findHostTools(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	specs, err := imageSpecs(ctx, binDir, o.KubernetesVersion, rel, tools)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	images, err := writeImages(specs, imageDir, stampDir, log)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	log.step("total", start, "done")
	return &Bundle{Version: o.KubernetesVersion, BinDir: binDir, Images: images}, nil
}

// componentBuilds lists the go builds of a release, generating the component modules of versions other than the
// checked-in ones. containerd and crictl do not depend on the release: the checked-in modules pin them.
func componentBuilds(ctx context.Context, g *goTool, components, workRoot, version string, rel *release.Release, k8sLDFlags string, log *progress) ([]goBuild, error) {
	modules := []componentModule{
		{name: "k8s", upstream: "k8s.io/kubernetes", version: version, goMod: k8sGoMod(version)},
		{name: "etcd", upstream: "go.etcd.io/etcd/server/v3", version: rel.EtcdServerVersion()},
		{name: "coredns", upstream: "github.com/coredns/coredns", version: rel.CoreDNSVersion},
	}
	dirs := map[string]string{}
	for _, m := range modules {
		if m.goMod == nil {
			m.goMod = m.requireOnly
		}
		dir, err := m.dir(ctx, g, components, workRoot, log)
		if err != nil {
			return nil, err
		}
		dirs[m.name] = dir
	}
	k8sBins, err := mainDirs(dirs["k8s"])
	if err != nil {
		return nil, err
	}
	containerd := filepath.Join(components, "containerd")
	containerdVersion, err := moduleRequirement(containerd, containerdModule)
	if err != nil {
		return nil, err
	}
	crictl := filepath.Join(components, "crictl")
	crictlVersion, err := moduleRequirement(crictl, crictlModule)
	if err != nil {
		return nil, err
	}
	return []goBuild{
		{name: "k8s", dir: dirs["k8s"], pkgs: []string{"./cmd/..."}, outputs: k8sBins, ldflags: k8sLDFlags},
		{name: "etcd", dir: dirs["etcd"], pkgs: []string{"."}, outputs: []string{"etcd"}, ldflags: "-s -w", static: true},
		{name: "coredns", dir: dirs["coredns"], pkgs: []string{"."}, outputs: []string{"coredns"}, ldflags: "-s -w", static: true},
		// kubeadm's upgrade health check runs `pause -v` and waits for it to exit; the version printed is the tag's.
		{name: "pause", dir: filepath.Join(components, "pause"), pkgs: []string{"."}, outputs: []string{"pause"},
			ldflags: "-s -w -X main.version=" + rel.PauseVersion, static: true},
		// LAB-FACTS §7: static, without btrfs support (no btrfs headers needed, and the nodes use overlayfs).
		{name: "containerd", dir: containerd, pkgs: []string{
			containerdModule + "/cmd/containerd", containerdModule + "/cmd/containerd-shim-runc-v2", containerdModule + "/cmd/ctr",
		}, outputs: []string{"containerd", "containerd-shim-runc-v2", "ctr"},
			ldflags: "-s -w -X " + containerdModule + "/version.Version=" + containerdVersion, static: true, tags: "no_btrfs"},
		{name: "crictl", dir: crictl, pkgs: []string{crictlModule + "/cmd/crictl"}, outputs: []string{"crictl"},
			ldflags: "-s -w -X " + crictlModule + "/pkg/version.Version=" + crictlVersion, static: true},
	}, nil
}

// The upstream modules of the release-independent components.
const (
	containerdModule = "github.com/containerd/containerd/v2"
	crictlModule     = "sigs.k8s.io/cri-tools"
)

// moduleRequirement returns the version the go.mod in dir requires of module.
func moduleRequirement(dir, module string) (string, error) {
	goMod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read the components module: %w", err)
	}
	v := requiredVersion(goMod, module)
	if v == "" {
		return "", fmt.Errorf("%s requires no %s", filepath.Join(dir, "go.mod"), module)
	}
	return v, nil
}

// buildKubeboot always runs go build: the Go build cache makes an unchanged tree cost about a
// second, and kubeboot changes far more often than any stamp input we could pick.
func buildKubeboot(ctx context.Context, g *goTool, repoRoot, binDir string, log *progress) error {
	start := time.Now()
	if !goFiles(filepath.Join(repoRoot, "cmd", "kubeboot")) {
		log.note("build kubeboot: skipped, %s has no Go files yet", filepath.Join(repoRoot, "cmd", "kubeboot"))
		return nil
	}
	out := filepath.Join(binDir, "kubeboot")
	// Static, as `make build` links it: the node-local API endpoint runs kubeboot inside the pause image, which
	// has no C library. With `make build`'s flags (no -trimpath) it shares its compiled dependencies with the
	// lab's binaries and the e2e test binary, which the Makefile builds with CGO_ENABLED=0 too.
	env := []string{"CGO_ENABLED=0"}
	if _, err := g.run(ctx, repoRoot, env, "build", "-buildvcs=false", "-o", out, "./cmd/kubeboot"); err != nil {
		return fmt.Errorf("build kubeboot: %w", err)
	}
	log.step("build kubeboot", start, "built")
	return nil
}

// lock serialises Ensure calls sharing a state dir (two engineers, or a test and the lab CLI).
func lock(ctx context.Context, path string, log *progress) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab build: lock: %w", err)
	}
	for waited := false; ; waited = true {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lab build: lock %s: %w", path, err)
		}
		if !waited {
			log.note("waiting for another lab build holding %s", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lab build: waiting for %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// progress writes one line per step with its duration.
type progress struct{ w io.Writer }

func (p *progress) step(what string, start time.Time, result string) {
	fmt.Fprintf(p.w, "lab build: %s: %s (%s)\n", what, result, time.Since(start).Round(time.Millisecond))
}

func (p *progress) note(format string, args ...any) {
	fmt.Fprintf(p.w, "lab build: "+format+"\n", args...)
}
