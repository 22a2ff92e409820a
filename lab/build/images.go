package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/release"
)

// busyboxImage is the lab's own image for test Pods.
const busyboxImage = "kubeboot.lab/busybox:1"

// Images kubeadm of a release asks for besides the kube-* ones, tagged as the release table says (kubeadm's
// constants DefaultEtcdVersion, CoreDNSVersion and PauseVersion).
func etcdImage(r *release.Release) string { return "registry.k8s.io/etcd:" + r.EtcdVersion }
func corednsImage(r *release.Release) string {
	return "registry.k8s.io/coredns/coredns:" + r.CoreDNSVersion
}

// PauseImage is the sandbox image of a release; the nodes' containerd must use the same.
func PauseImage(r *release.Release) string { return "registry.k8s.io/pause:" + r.PauseVersion }

// kubeImages are the Kubernetes components that run from images (the kubelet runs on the node).
var kubeImages = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}

// iptablesNames are the commands Debian's iptables package provides through xtables-nft-multi;
// kube-proxy runs iptables, iptables-save and iptables-restore (and the ip6tables ones).
var iptablesNames = []string{
	"iptables", "iptables-nft", "iptables-save", "iptables-nft-save", "iptables-restore", "iptables-nft-restore",
	"ip6tables", "ip6tables-nft", "ip6tables-save", "ip6tables-nft-save", "ip6tables-restore", "ip6tables-nft-restore",
}

// hostTools are the host files the images copy besides our own binaries.
type hostTools struct {
	Busybox        string   // a static busybox binary
	Curl           string   // Debian's curl, for HTTPS from test Pods
	Applets        []string // image paths busybox answers to, e.g. /bin/sh
	XtablesMulti   string   // xtables-nft-multi
	XtablesModules []string // the libxt_*.so extensions iptables loads at run time
}

// findHostTools locates what apt installed (busybox-static, iptables).
func findHostTools(ctx context.Context) (hostTools, error) {
	var t hostTools
	bb, err := firstExisting("/bin/busybox", "/usr/bin/busybox")
	if err != nil {
		return t, fmt.Errorf("busybox: %w (install the Debian package busybox-static)", err)
	}
	if t.Busybox, err = filepath.EvalSymlinks(bb); err != nil {
		return t, fmt.Errorf("busybox: %w", err)
	}
	if dyn, err := isDynamic(t.Busybox); err != nil || dyn {
		return t, fmt.Errorf("busybox %s is not static (install busybox-static, not busybox): %v", t.Busybox, err)
	}
	out, err := exec.CommandContext(ctx, t.Busybox, "--list-full").Output()
	if err != nil {
		return t, fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		t.Applets = append(t.Applets, "/"+a)
	}
	if len(t.Applets) == 0 {
		return t, fmt.Errorf("busybox --list-full listed no applets")
	}

	if t.Curl, err = firstExisting("/usr/bin/curl"); err != nil {
		return t, fmt.Errorf("curl: %w (install the Debian package curl)", err)
	}
	if t.XtablesMulti, err = firstExisting("/usr/sbin/xtables-nft-multi", "/sbin/xtables-nft-multi"); err != nil {
		return t, fmt.Errorf("xtables-nft-multi: %w (install the Debian package iptables)", err)
	}
	mods, err := filepath.Glob("/usr/lib/*/xtables/*.so")
	if err != nil {
		return t, err
	}
	if len(mods) == 0 {
		return t, fmt.Errorf("no iptables extensions in /usr/lib/*/xtables (install the Debian package iptables)")
	}
	t.XtablesModules = mods
	return t, nil
}

func firstExisting(paths ...string) (string, error) {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s exists", strings.Join(paths, ", "))
}

// baseLayer holds what every image carries: the directories and account files programs
// expect (distroless images ship the same), nsswitch.conf so cgo's resolver reads /etc/hosts
// before DNS, and an /etc/hosts naming localhost.
func baseLayer() (*layer, error) {
	l := newLayer()
	steps := []error{
		l.addDir("/tmp", 0o1777),
		l.addDir("/root", 0o700),
		l.addDir("/usr/local/bin", 0o755),
		l.addData("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644),
		l.addData("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644),
		l.addData("/etc/nsswitch.conf", []byte("hosts: files dns\n"), 0o644),
		// Runtimes mount their own /etc/hosts over this one; it covers ctr run and other bare
		// runs, where etcd's default localhost URLs otherwise go to a DNS server.
		l.addData("/etc/hosts", []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), 0o644),
	}
	for _, err := range steps {
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// imageSpecs describes every lab image. kube-* images take the Kubernetes version as their tag.
func imageSpecs(ctx context.Context, binDir, version string, rel *release.Release, tools hostTools) ([]imageSpec, error) {
	var specs []imageSpec
	bin := func(name string) string { return filepath.Join(binDir, name) }

	for _, name := range kubeImages {
		l, err := baseLayer()
		if err != nil {
			return nil, err
		}
		if err := l.addWithLibraries(ctx, "/usr/local/bin/"+name, bin(name)); err != nil {
			return nil, fmt.Errorf("image %s: %w", name, err)
		}
		if name == "kube-proxy" {
			if err := addIptables(ctx, l, tools); err != nil {
				return nil, fmt.Errorf("image %s: %w", name, err)
			}
		}
		// kubeadm's manifests set command: [kube-apiserver, ...]; the Entrypoint serves
		// Pods that pass only args.
		specs = append(specs, imageSpec{
			Ref:        "registry.k8s.io/" + name + ":" + version,
			Layers:     []*layer{l},
			Env:        []string{defaultPath},
			Entrypoint: []string{"/usr/local/bin/" + name},
		})
	}

	etcd, err := baseLayer()
	if err != nil {
		return nil, err
	}
	if err := etcd.addWithLibraries(ctx, "/usr/local/bin/etcd", bin("etcd")); err != nil {
		return nil, fmt.Errorf("image etcd: %w", err)
	}
	// Like upstream's etcd image: no Entrypoint, so kubeadm's `command: [etcd, ...]` and
	// `etcd --version` both run as written.
	specs = append(specs, imageSpec{Ref: etcdImage(rel), Layers: []*layer{etcd}, Env: []string{defaultPath}, Cmd: []string{"/usr/local/bin/etcd"}})

	dns, err := baseLayer()
	if err != nil {
		return nil, err
	}
	if err := dns.addWithLibraries(ctx, "/usr/local/bin/coredns", bin("coredns")); err != nil {
		return nil, fmt.Errorf("image coredns: %w", err)
	}
	// kubeadm's CoreDNS Deployment passes only args (-conf /etc/coredns/Corefile).
	specs = append(specs, imageSpec{Ref: corednsImage(rel), Layers: []*layer{dns}, Env: []string{defaultPath}, Entrypoint: []string{"/usr/local/bin/coredns"}})

	pause, err := baseLayer()
	if err != nil {
		return nil, err
	}
	if err := pause.addWithLibraries(ctx, "/pause", bin("pause")); err != nil {
		return nil, fmt.Errorf("image pause: %w", err)
	}
	specs = append(specs, imageSpec{Ref: PauseImage(rel), Layers: []*layer{pause}, Env: []string{defaultPath}, Entrypoint: []string{"/pause"}})

	bb, err := baseLayer()
	if err != nil {
		return nil, err
	}
	if err := bb.addFile("/bin/busybox", tools.Busybox); err != nil {
		return nil, fmt.Errorf("image busybox: %w", err)
	}
	for _, a := range tools.Applets {
		if a == "/bin/busybox" {
			continue
		}
		if err := bb.addSymlink(a, "/bin/busybox"); err != nil {
			return nil, fmt.Errorf("image busybox: %w", err)
		}
	}
	// busybox's own TLS client cannot complete a handshake with kube-apiserver 1.37 (Go 1.26's TLS server
	// answers its hello with handshake_failure); Pods reach the API over HTTPS with Debian's curl.
	if err := bb.addWithLibraries(ctx, "/usr/bin/curl", tools.Curl); err != nil {
		return nil, fmt.Errorf("image busybox: %w", err)
	}
	specs = append(specs, imageSpec{Ref: busyboxImage, Layers: []*layer{bb}, Env: []string{defaultPath}, Cmd: []string{"sh"}})
	return specs, nil
}

// addIptables puts Debian's iptables-nft into l: xtables-nft-multi under every name kube-proxy
// may call, the extensions it dlopens at run time (ldd of the binary cannot see those), and
// the libraries of both (libxt_statistic needs libm, which the binary itself does not).
func addIptables(ctx context.Context, l *layer, t hostTools) error {
	if err := l.addWithLibraries(ctx, "/usr/sbin/xtables-nft-multi", t.XtablesMulti); err != nil {
		return err
	}
	for _, name := range iptablesNames {
		if err := l.addSymlink("/usr/sbin/"+name, "xtables-nft-multi"); err != nil {
			return err
		}
	}
	for _, m := range t.XtablesModules {
		if err := l.addHostPath(m); err != nil {
			return err
		}
		if err := l.addLibrariesOf(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// imageFileName turns a reference into a tar file name: registry.k8s.io/pause:3.10.1 -> pause_3.10.1.tar.
func imageFileName(ref string) string {
	return strings.ReplaceAll(path.Base(ref), ":", "_") + ".tar"
}

// digestCache remembers file digests within one Ensure: libc is in several images.
type digestCache map[string]string

func (c digestCache) get(p string) (string, error) {
	if d, ok := c[p]; ok {
		return d, nil
	}
	d, err := fileDigest(p)
	if err != nil {
		return "", err
	}
	c[p] = d
	return d, nil
}

// imageStamp digests everything that determines an image's tar: the reference, the config and
// every entry with the content hash of its file.
func imageStamp(spec imageSpec, digests digestCache) (string, error) {
	s := newStamper("image")
	s.addString("ref", spec.Ref)
	cfg, err := json.Marshal(containerConfig{Env: spec.Env, Entrypoint: spec.Entrypoint, Cmd: spec.Cmd})
	if err != nil {
		return "", err
	}
	s.addString("config", string(cfg))
	for i, l := range spec.Layers {
		s.addString("layer", fmt.Sprint(i))
		for _, e := range l.sorted() {
			content := ""
			switch {
			case e.Source != "":
				if content, err = digests.get(e.Source); err != nil {
					return "", err
				}
			case e.Kind == kindFile:
				content = fmt.Sprintf("%x", e.Data)
			}
			s.addString(e.Path, fmt.Sprintf("%s %o %s %s", e.Kind, e.Mode, e.Link, content))
		}
	}
	return s.sum(), nil
}

// writeImages writes every image tar whose stamp changed and returns them in spec order.
func writeImages(specs []imageSpec, imageDir, stampDir string, log *progress) ([]Image, error) {
	digests := digestCache{}
	var images []Image
	for _, spec := range specs {
		start := time.Now()
		tarPath := filepath.Join(imageDir, imageFileName(spec.Ref))
		stampFile := filepath.Join(stampDir, "image-"+strings.TrimSuffix(imageFileName(spec.Ref), ".tar"))
		sum, err := imageStamp(spec, digests)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", spec.Ref, err)
		}
		ok, err := upToDate(stampFile, sum, []string{tarPath})
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", spec.Ref, err)
		}
		images = append(images, Image{Ref: spec.Ref, Tar: tarPath})
		if ok {
			log.step("image "+spec.Ref, start, "up to date")
			continue
		}
		if err := clearStamp(stampFile); err != nil {
			return nil, err
		}
		if err := writeDockerArchive(tarPath, spec); err != nil {
			return nil, fmt.Errorf("write image %s: %w", spec.Ref, err)
		}
		if err := writeStamp(stampFile, sum); err != nil {
			return nil, fmt.Errorf("image %s: %w", spec.Ref, err)
		}
		log.step("image "+spec.Ref, start, "written "+humanSize(tarPath))
	}
	return images, nil
}

func humanSize(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
}
