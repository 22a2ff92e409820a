package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"syscall"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// DefaultClusterToken is etcd's --initial-cluster-token default, which kubeadm's manifests keep.
const DefaultClusterToken = "etcd-cluster"

// RevisionBump is how far a restore moves etcd's revision past the snapshot's, with that revision marked compacted:
// what the etcd project advises for Kubernetes. The API servers' watch caches, informers and kubelets hold
// resource versions from after the snapshot; a revision that went back would let them miss or misorder changes,
// while a compacted one makes every watch fail with "too old resource version" and list again.
const RevisionBump = 1_000_000_000

// RestoredClusterToken is the cluster token a restore at a given time uses: the manifest's --initial-cluster-token
// (or etcd's default) with "-restored-" and the time (UTC, timeFormat) after it. etcd derives the new cluster's ID
// and its member's ID from the token; with the old one, the restored member would have its old ID in a cluster of
// the old cluster's ID, and a member of the old cluster that still runs would take it back: seen in TestHA, where
// cp3's etcd, not yet stopped by its kubelet, asked the restored member on cp1 for its vote, won it (a term past
// the restored member's), and sent it the old cluster's snapshot, so cp1 was left in the old three-member cluster
// with no leader. With a new token the old members' messages are refused (cluster ID mismatch). The manifest keeps
// kubeadm's flags: etcd reads --initial-cluster-token only when it makes a new data directory, not on restart.
func RestoredClusterToken(manifestToken string, at time.Time) string {
	if manifestToken == "" {
		manifestToken = DefaultClusterToken
	}
	return manifestToken + "-restored-" + at.UTC().Format(timeFormat)
}

// DataDir is a new etcd data directory to restore a snapshot into.
type DataDir struct {
	// Path is where the data directory goes, on the machine; it must not exist or be empty.
	Path string
	// Name and PeerURL are the one member's: its --name and --initial-advertise-peer-urls.
	Name, PeerURL string
	// ClusterToken is the new cluster's token (RestoredClusterToken); "": DefaultClusterToken.
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

// moveAside moves the etcd data directory dir out of etcd's way, keeping its contents, and returns where they went
// ("" when dir does not exist). Normally dir is renamed to dir+"."+suffix. A data directory that is a mount point
// (etcd on its own disk, as etcd's operators advise) cannot be renamed (EBUSY): its entries then move into
// dir+"/"+suffix on the same disk, which etcd ignores (it logs "found invalid file under data directory").
func moveAside(fsys nodefs.FS, dir, suffix string) (string, error) {
	if !fsys.Exists(dir) {
		return "", nil
	}
	aside := dir + "." + suffix
	err := fsys.Rename(dir, aside)
	if err == nil {
		return aside, nil
	}
	if !errors.Is(err, syscall.EBUSY) {
		return "", fmt.Errorf("move the etcd data directory %s aside: %w", dir, err)
	}
	return moveEntriesInside(fsys, dir, suffix)
}

// moveEntriesInside moves every entry of dir into the new directory dir/name and returns that directory.
func moveEntriesInside(fsys nodefs.FS, dir, name string) (string, error) {
	aside := path.Join(dir, name)
	entries, err := os.ReadDir(fsys.Path(dir))
	if err != nil {
		return "", fmt.Errorf("move the etcd data directory %s aside: %w", dir, err)
	}
	if err := fsys.MkdirPrivate(aside, 0o700); err != nil {
		return "", fmt.Errorf("move the etcd data directory %s aside (it is a mount point; its entries go to %s): %w", dir, aside, err)
	}
	for _, e := range entries {
		if err := fsys.Rename(path.Join(dir, e.Name()), path.Join(aside, e.Name())); err != nil {
			return "", fmt.Errorf("move the etcd data directory %s aside (it is a mount point; its entries go to %s): %w", dir, aside, err)
		}
	}
	return aside, nil
}

// restoreInto restores a snapshot with restore into the data directory dir.Path (a node path here), which may hold
// an earlier data directory moved inside it by moveAside: the snapshot is then restored into a new directory
// beside that one, whose entries (etcd's "member") move up into dir, so etcd finds its data where it looks.
func restoreInto(fsys nodefs.FS, restore func(db string, dir DataDir) error, db string, dir DataDir, stamp string) error {
	node := dir.Path
	entries, err := os.ReadDir(fsys.Path(node))
	if err != nil || len(entries) == 0 {
		dir.Path = fsys.Path(node)
		return restore(db, dir)
	}
	tmp := path.Join(node, ".kubeboot-restore-"+stamp)
	dir.Path = fsys.Path(tmp)
	if err := restore(db, dir); err != nil {
		_ = fsys.RemoveAll(tmp)
		return err
	}
	fresh, err := os.ReadDir(fsys.Path(tmp))
	if err != nil {
		return fmt.Errorf("restore the etcd snapshot into %s: %w", node, err)
	}
	for _, e := range fresh {
		if err := fsys.Rename(path.Join(tmp, e.Name()), path.Join(node, e.Name())); err != nil {
			return fmt.Errorf("restore the etcd snapshot into %s: move %s up from %s: %w", node, e.Name(), tmp, err)
		}
	}
	return fsys.Remove(tmp)
}
