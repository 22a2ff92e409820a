// Package build produces what the lab's nodes run: the upstream Kubernetes components, etcd,
// CoreDNS, pause and kubeboot as binaries, and the container images kubeadm v1.34 expects as
// docker-archive tars that containerd imports without a registry. Every step is cached by a
// stamp of its inputs, so a second Ensure with nothing changed takes seconds.
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
)

const (
	// DefaultStateDir holds bin/, images/, stamps/ and generated work modules.
	DefaultStateDir = "/var/lib/kubeboot-lab"
	// DefaultKubernetesVersion is the version lab/components/k8s/go.mod pins.
	DefaultKubernetesVersion = "v1.34.4"
)

// Options configures Ensure. Zero values take the defaults.
type Options struct {
	StateDir          string // default DefaultStateDir; binaries in StateDir/bin, images in StateDir/images
	RepoRoot          string // the kubeboot checkout (holds lab/components and cmd/kubeboot); required
	KubernetesVersion string // default DefaultKubernetesVersion; drives the module version, replaces and ldflags
	Log               io.Writer
}

// Image is one image tar and the reference it is tagged with inside it.
type Image struct{ Ref, Tar string }

// Bundle is what Ensure produced.
type Bundle struct {
	BinDir string
	Images []Image
}

// Ensure builds every binary and image the lab needs, reusing what is current.
func Ensure(ctx context.Context, o Options) (*Bundle, error) {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.KubernetesVersion == "" {
		o.KubernetesVersion = DefaultKubernetesVersion
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
	components := filepath.Join(o.RepoRoot, "lab", "components")
	if _, err := os.Stat(filepath.Join(components, "k8s", "go.mod")); err != nil {
		return nil, fmt.Errorf("lab build: %w (is Options.RepoRoot %q the kubeboot checkout?)", err, o.RepoRoot)
	}
	log := &progress{w: o.Log}
	start := time.Now()

	binDir := filepath.Join(o.StateDir, "bin")
	imageDir := filepath.Join(o.StateDir, "images")
	stampDir := filepath.Join(o.StateDir, "stamps")
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

	k8sDir, err := k8sModuleDir(ctx, g, filepath.Join(components, "k8s"), filepath.Join(o.StateDir, "work"), o.KubernetesVersion, log)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	k8sBins, err := mainDirs(k8sDir)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	groups := []goBuild{
		{name: "k8s", dir: k8sDir, pkg: "./cmd/...", outputs: k8sBins, ldflags: ldflags},
		{name: "etcd", dir: filepath.Join(components, "etcd"), pkg: ".", outputs: []string{"etcd"}, ldflags: "-s -w", static: true},
		{name: "coredns", dir: filepath.Join(components, "coredns"), pkg: ".", outputs: []string{"coredns"}, ldflags: "-s -w", static: true},
		{name: "pause", dir: filepath.Join(components, "pause"), pkg: ".", outputs: []string{"pause"}, ldflags: "-s -w", static: true},
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
	specs, err := imageSpecs(ctx, binDir, o.KubernetesVersion, tools)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	images, err := writeImages(specs, imageDir, stampDir, log)
	if err != nil {
		return nil, fmt.Errorf("lab build: %w", err)
	}
	log.step("total", start, "done")
	return &Bundle{BinDir: binDir, Images: images}, nil
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
	if _, err := g.run(ctx, repoRoot, nil, "build", "-trimpath", "-buildvcs=false", "-o", out, "./cmd/kubeboot"); err != nil {
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
