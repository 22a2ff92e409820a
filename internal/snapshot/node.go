package snapshot

import (
	"context"

	"golang.org/x/sys/unix"

	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// NodeReacher probes etcd client URLs with this node's etcd client certificate (etcd.ClientTLS of CertDir): an
// endpoint answers when the TLS handshake completes.
type NodeReacher struct {
	FS      nodefs.FS
	CertDir string
}

// Reach implements Reacher. Without a client certificate an endpoint answers when it accepts a TCP connection.
func (n NodeReacher) Reach(ctx context.Context, endpoints []string) map[string]error {
	tlsConfig, err := etcd.ClientTLS(n.FS, n.CertDir)
	if err != nil {
		tlsConfig = nil
	}
	return etcd.Reachable(ctx, endpoints, tlsConfig)
}

// StatFS is the machine's disk as statfs(2) sees it.
type StatFS struct{}

// Free implements Disk: the bytes available to an unprivileged user under path, as df shows them.
func (StatFS) Free(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
