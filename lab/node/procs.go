package node

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// PIDsInNamespace lists the processes whose namespace of a kind ("mnt", "net") has inode ino.
func PIDsInNamespace(kind string, ino uint64) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if got, err := NSInode(pid, kind); err == nil && got == ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Alive reports whether pid is a running (not zombie) process.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself contain ") ".
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
		}
	}
	return false
}

// Kill sends SIGKILL to every pid; processes already gone are no error.
func Kill(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
