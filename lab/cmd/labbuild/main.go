// Command labbuild builds the lab's binaries and images on its own: go run ./lab/cmd/labbuild.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/lab/build"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "labbuild:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("labbuild", flag.ContinueOnError)
	stateDir := fs.String("state-dir", build.DefaultStateDir, "where binaries (bin/VERSION), images (images/VERSION) and stamps go")
	version := fs.String("version", release.DefaultVersion(), "Kubernetes version to build (etcd, CoreDNS and pause follow from kubeboot's release table)")
	repo := fs.String("repo", "", "kubeboot checkout (default: the module root above the working directory)")
	printBinDir := fs.Bool("print-bin-dir", false, "print the version's binary directory and build nothing")
	all := fs.Bool("all", false, "build every release of kubeboot's release table (newest first) instead of -version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *printBinDir {
		fmt.Println(build.BinDir(*stateDir, *version))
		return nil
	}
	if *repo == "" {
		root, err := findRepoRoot()
		if err != nil {
			return err
		}
		*repo = root
	}
	versions := []string{*version}
	if *all {
		versions = versions[:0]
		for _, r := range release.All() {
			versions = append(versions, r.Version)
		}
	}
	for _, v := range versions {
		b, err := build.Ensure(ctx, build.Options{StateDir: *stateDir, RepoRoot: *repo, KubernetesVersion: v, Log: os.Stderr})
		if err != nil {
			return err
		}
		fmt.Printf("bin\t%s\n", b.BinDir)
		for _, img := range b.Images {
			fmt.Printf("image\t%s\t%s\n", img.Ref, img.Tar)
		}
	}
	return nil
}

// findRepoRoot walks up from the working directory to kubeboot's go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(data)), "module kubeboot.dev/kubeboot\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no kubeboot checkout above the working directory: pass -repo")
		}
		dir = parent
	}
}
