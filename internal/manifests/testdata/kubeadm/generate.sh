#!/bin/sh
# Regenerates the reference manifests rendered by upstream kubeadm (the release of the cases' kubernetesVersion, v1.37.2 today) for each */kubeadm.yaml here.
# kubeadm writes /etc/kubernetes/manifests and creates etcd's data directory, so it runs in a private mount
# namespace with /etc and /var under overlays whose upper layers are temporary directories: the machine's files
# are never touched. Every dataDir in the configurations must therefore lie under /var.
# The references depend on which CA directories exist here (Debian 12: /etc/ca-certificates,
# /usr/share/ca-certificates, /usr/local/share/ca-certificates; debianHost in the tests).
# A case with a patches/ folder gets it copied to /etc/kubernetes/patches inside the overlay, where its
# kubeadm.yaml's patches.directory points, and kubeadm's [patches] lines are kept in patches-output.txt.
# Usage: KUBEADM=/var/lib/kubeboot-lab/bin/kubeadm ./generate.sh   (as root, with no *_proxy variables set)
set -eu
KUBEADM=${KUBEADM:-/var/lib/kubeboot-lab/bin/kubeadm}
here=$(cd "$(dirname "$0")" && pwd)
for dir in "$here"/*/; do
	case=$(basename "$dir")
	tmp=$(mktemp -d)
	mkdir "$tmp/upper" "$tmp/work" "$tmp/var" "$tmp/varw"
	unshare -m --propagation private sh -c "
		mount -t overlay overlay -o lowerdir=/etc,upperdir=$tmp/upper,workdir=$tmp/work /etc &&
		mount -t overlay overlay -o lowerdir=/var,upperdir=$tmp/var,workdir=$tmp/varw /var &&
		if [ -d $dir/patches ]; then mkdir -p /etc/kubernetes && cp -r $dir/patches /etc/kubernetes/patches; fi &&
		$KUBEADM init phase control-plane all --config $dir/kubeadm.yaml >$tmp/stdout &&
		$KUBEADM init phase etcd local --config $dir/kubeadm.yaml >>$tmp/stdout"
	if [ -d "$dir/patches" ]; then
		grep '^\[patches\]' "$tmp/stdout" >"$dir/patches-output.txt"
	fi
	rm -f "$dir"/*.yaml.ref
	for f in "$tmp"/upper/kubernetes/manifests/*.yaml; do
		[ -e "$f" ] && cp "$f" "$dir/$(basename "$f").ref"
	done
	rm -rf "$tmp"
	echo "$case: $(ls "$dir" | grep -c '\.ref$') manifests"
done
