package reset

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounter sees and removes the machine's mounts. The kubelet mounts Pod volumes (tmpfs for Secrets, bind mounts
// for hostPath subPaths) below /var/lib/kubelet; they must be gone before its contents are deleted, or the
// deletion would reach through them into whatever they expose.
type Mounter interface {
	// MountPoints lists every mount point of kubeboot's mount namespace, in mount order (a path mounted twice
	// appears twice).
	MountPoints() ([]string, error)
	// Unmount removes the most recent mount on target.
	Unmount(target string, flags int) error
}

// HostMounts is the real machine: /proc/self/mountinfo and umount2(2).
type HostMounts struct{}

// MountPoints implements Mounter.
func (HostMounts) MountPoints() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	return ParseMountInfo(data)
}

// Unmount implements Mounter.
func (HostMounts) Unmount(target string, flags int) error {
	if err := unix.Unmount(target, flags); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// ParseMountInfo returns the mount points (the fifth field) of a /proc/<pid>/mountinfo file, unescaped.
func ParseMountInfo(data []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 5 {
			return nil, fmt.Errorf("mountinfo line %d: %d fields, want at least 5", n, len(fields))
		}
		out = append(out, unescapeOctal(fields[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and backslash as \ooo.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountFlags maps ResetConfiguration.unmountFlags names to umount2(2) flags.
var unmountFlags = map[string]int{
	"MNT_FORCE":       unix.MNT_FORCE,
	"MNT_DETACH":      unix.MNT_DETACH,
	"MNT_EXPIRE":      unix.MNT_EXPIRE,
	"UMOUNT_NOFOLLOW": unix.UMOUNT_NOFOLLOW,
}

func flagsOf(names []string) int {
	f := 0
	for _, n := range names {
		f |= unmountFlags[n]
	}
	return f
}

// mountsBelow returns the mount points strictly below dir, in mount order.
func mountsBelow(points []string, dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var out []string
	for _, p := range points {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}
