package node

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// CgroupHierarchies lists the mount points of the machine's cgroup v1 hierarchies (cpu, memory,
// pids, name=systemd...) and, with unified, of the cgroup v2 one a hybrid machine also mounts: the
// kubelet's cgroupfs driver creates its cgroups there too, so teardown must look there as well.
func CgroupHierarchies(unified bool) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if fs := fields[sep+1]; fs == "cgroup" || (unified && fs == "cgroup2") {
			dirs = append(dirs, fields[4])
		}
	}
	return dirs, sc.Err()
}

// CreateCgroupRoot creates the node's cgroupRoot (e.g. /kblab-cp1) in every hierarchy, so that the
// kubelets of different nodes do not fight over /kubepods (LAB-FACTS §5).
func CreateCgroupRoot(root string) error {
	hs, err := CgroupHierarchies(false)
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(h, root)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		// A new v1 cpuset has no CPUs or memory nodes, and nothing can join it until it has some.
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			parent, err := os.ReadFile(filepath.Join(h, file))
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, file), parent, 0o644); err != nil {
				return fmt.Errorf("init %s in %s: %w", file, dir, err)
			}
		}
	}
	return nil
}

// CgroupPIDs lists the processes anywhere under the cgroupRoot root, in any hierarchy: the Pods.
func CgroupPIDs(root string) []int {
	hs, _ := CgroupHierarchies(true)
	seen := map[int]bool{}
	for _, h := range hs {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// RemoveCgroupRoot removes root and everything below it in every hierarchy, deepest first. It
// fails while processes remain in them.
func RemoveCgroupRoot(root string) error {
	if strings.Trim(root, "/") == "" {
		return fmt.Errorf("remove cgroup root %q: refusing a root that is the whole hierarchy", root)
	}
	hs, err := CgroupHierarchies(true)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// WalkDir lists parents before children: remove in reverse.
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// CgroupRoots lists the cgroupRoots with the lab's prefix that exist in any hierarchy.
func CgroupRoots() []string {
	hs, _ := CgroupHierarchies(true)
	seen := map[string]bool{}
	for _, h := range hs {
		entries, _ := os.ReadDir(h)
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), Prefix) {
				seen["/"+e.Name()] = true
			}
		}
	}
	var roots []string
	for r := range seen {
		roots = append(roots, r)
	}
	slices.Sort(roots)
	return roots
}
