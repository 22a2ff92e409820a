#!/bin/sh
# Regenerates the reference manifests rendered by upstream kubeadm for each v*/*/kubeadm.yaml here.
# kubeadm writes /etc/kubernetes/manifests and creates etcd's data directory, so it runs in a private mount
# namespace with /etc and /var under overlays whose upper layers are temporary directories: the machine's files
# are never touched. Every dataDir in the configurations must therefore lie under /var.
# The references depend on which CA directories exist here (Debian 12: /etc/ca-certificates,
# /usr/share/ca-certificates, /usr/local/share/ca-certificates; debianHost in the tests).
# A case with a patches/ folder gets it copied to /etc/kubernetes/patches inside the overlay, where its
# kubeadm.yaml's patches.directory points, and kubeadm's [patches] lines are kept in patches-output.txt.
# Usage: ./generate.sh   (as root, with no *_proxy variables set)
set -eu
# One directory per release (v1.37/, v1.36/): each case's kubernetesVersion names the kubeadm that renders it, the
# lab's build of that release (LAB_BIN/VERSION/kubeadm; go run ./lab/cmd/labbuild -version VERSION builds it).
LAB_BIN=${LAB_BIN:-/var/lib/kubeboot-lab/bin}
here=$(cd "$(dirname "$0")" && pwd)
for dir in "$here"/v*/*/; do
	case=$(basename "$(dirname "$dir")")/$(basename "$dir")
	version=$(sed -n 's/^kubernetesVersion: //p' "$dir/kubeadm.yaml")
	KUBEADM=$LAB_BIN/$version/kubeadm
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
