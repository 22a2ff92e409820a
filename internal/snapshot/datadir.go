package snapshot

import (
	"fmt"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// DefaultClusterToken is etcd's --initial-cluster-token default, which kubeadm's manifests keep.
const DefaultClusterToken = "etcd-cluster"

// RevisionBump is how far a restore moves etcd's revision past the snapshot's, with that revision marked compacted:
// what the etcd project advises for Kubernetes. The API servers' watch caches, informers and kubelets hold
// resource versions from after the snapshot; a revision that went back would let them miss or misorder changes,
// while a compacted one makes every watch fail with "too old resource version" and list again.
const RevisionBump = 1_000_000_000

// DataDir is a new etcd data directory to restore a snapshot into.
type DataDir struct {
	// Path is where the data directory goes, on the machine; it must not exist or be empty.
	Path string
	// Name and PeerURL are the one member's: its --name and --initial-advertise-peer-urls.
	Name, PeerURL string
	// ClusterToken is --initial-cluster-token; "": DefaultClusterToken.
	ClusterToken string
}

// RestoreDataDir makes dir a data directory of a new one-member cluster holding the snapshot file db, with the
// etcd project's own restore (etcdutl), which checks the snapshot's SHA-256 trailer first. etcd started on it
// with that name and peer URL serves the snapshot's keys; other members join it as new members.
func RestoreDataDir(db string, dir DataDir) error {
	token := dir.ClusterToken
	if token == "" {
		token = DefaultClusterToken
	}
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        db,
		Name:                dir.Name,
		OutputDataDir:       dir.Path,
		PeerURLs:            []string{dir.PeerURL},
		InitialCluster:      dir.Name + "=" + dir.PeerURL,
		InitialClusterToken: token,
		RevisionBump:        RevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		return fmt.Errorf("restore the etcd snapshot into %s: %w", dir.Path, err)
	}
	return nil
}
