#!/bin/sh
# Regenerates what upstream kubeadm writes to /var/lib/kubelet for each v*/*/kubeadm.yaml here
# (`kubeadm init phase kubelet-start`). kubeadm runs in private mount and UTS namespaces: /var and /etc are
# overlays whose upper layers are temporary directories, the hostname is kb-ref-host, and PATH is empty so
# kubeadm finds no init system and restarts nothing. The machine's files and services are never touched.
# A case with a patches/ folder gets it copied to /etc/kubernetes/patches inside the overlay, where its
# kubeadm.yaml's patches.directory points, and kubeadm's [patches] lines are kept in patches-output.txt.
# Usage: ./generate.sh   (as root)
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
	mkdir "$tmp/etc" "$tmp/etcw" "$tmp/var" "$tmp/varw"
	unshare -m -u --propagation private sh -c "
		hostname kb-ref-host &&
		mount -t overlay overlay -o lowerdir=/etc,upperdir=$tmp/etc,workdir=$tmp/etcw /etc &&
		mount -t overlay overlay -o lowerdir=/var,upperdir=$tmp/var,workdir=$tmp/varw /var &&
		if [ -d $dir/patches ]; then mkdir -p /etc/kubernetes && cp -r $dir/patches /etc/kubernetes/patches; fi &&
		PATH=/nonexistent $KUBEADM init phase kubelet-start --config $dir/kubeadm.yaml >$tmp/stdout 2>/dev/null"
	if [ -d "$dir/patches" ]; then
		grep '^\[patches\]' "$tmp/stdout" >"$dir/patches-output.txt"
	fi
	rm -f "$dir"/*.ref
	for f in "$tmp"/var/lib/kubelet/*; do
		cp "$f" "$dir/$(basename "$f").ref"
	done
	rm -rf "$tmp"
	echo "$case: $(ls "$dir" | grep '\.ref$' | tr '\n' ' ')"
done
