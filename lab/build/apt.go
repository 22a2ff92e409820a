package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// hostPackages are the Debian packages whose files go into the images: a static busybox and curl
// for the test image, iptables-nft for kube-proxy's.
var hostPackages = []string{"busybox-static", "curl", "iptables"}

// installed reports whether dpkg has pkg fully installed.
func installed(ctx context.Context, pkg string) bool {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.TrimSpace(string(out)) == "install ok installed"
}

// ensurePackages installs the missing ones of pkgs with apt-get: CI starts from a fresh machine.
func ensurePackages(ctx context.Context, log *progress, pkgs ...string) error {
	start := time.Now()
	var missing []string
	for _, p := range pkgs {
		if !installed(ctx, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("Debian packages %s are missing and installing them needs root: run apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	log.note("apt: installing %s", strings.Join(missing, " "))
	if err := aptGet(ctx, "update"); err != nil {
		return err
	}
	if err := aptGet(ctx, append([]string{"install", "-y", "--no-install-recommends"}, missing...)...); err != nil {
		return err
	}
	for _, p := range missing {
		if !installed(ctx, p) {
			return fmt.Errorf("apt-get install %s finished but dpkg does not list it as installed", p)
		}
	}
	log.step("apt install "+strings.Join(missing, " "), start, "installed")
	return nil
}

func aptGet(ctx context.Context, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(out.String(), 20))
	}
	return nil
}
