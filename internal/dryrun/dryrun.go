// Package dryrun reports what a dry run would have written. A dry run works on a nodefs.Overlay of the node: it
// reads the node's files, so it decides as a real run would, and keeps everything it writes in memory, keys
// included, so no key material exists anywhere but in the process.
package dryrun

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// hidden replaces the value of a static Pod's environment variable in the report.
const hidden = "<hidden>"

// Report lists every file the dry run holds in fsys with its mode and size, then shows the content of those that
// carry no secret. What kubeboot writes readable by the owner alone is private: private keys and kubeconfig files
// (keys and tokens) are only named; static Pod manifests are shown with their environment values hidden, since
// *_proxy variables and extraEnvs may hold credentials. Their command lines are shown: every user of the node can
// read a process's command line, so extraArgs are no place for secrets.
func Report(w io.Writer, fsys nodefs.FS) error {
	files := fsys.Held()
	fmt.Fprintf(w, "[dryrun] would write %d files:\n", len(files))
	for _, f := range files {
		fmt.Fprintf(w, "[dryrun]   %s %s (%d bytes)\n", f.Mode.Perm(), f.Path, len(f.Data))
	}
	for _, f := range files {
		shown, ok := showable(f)
		if !ok {
			continue
		}
		fmt.Fprintf(w, "[dryrun] --- %s\n%s\n", f.Path, shown)
	}
	return nil
}

// showable returns what of f the report may show, and false when nothing may be.
func showable(f nodefs.File) ([]byte, bool) {
	if bytes.Contains(f.Data, []byte("PRIVATE KEY")) {
		return nil, false // whatever its mode
	}
	if f.Mode.Perm()&0o077 != 0 {
		return f.Data, true
	}
	if path.Dir(f.Path) == staticpod.Dir && strings.HasSuffix(f.Path, ".yaml") {
		return staticPodWithoutEnv(f.Data)
	}
	return nil, false
}

// staticPodWithoutEnv is a static Pod manifest with every environment value of its containers hidden; false if
// it does not read as a Pod (a patch made it something else), as nothing can then be told apart.
func staticPodWithoutEnv(b []byte) ([]byte, bool) {
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil || pod.Kind != "Pod" {
		return nil, false
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for j := range cs[i].Env {
				if cs[i].Env[j].Value != "" {
					cs[i].Env[j].Value = hidden
				}
			}
		}
	}
	out, err := manifests.Marshal(&pod)
	if err != nil {
		return nil, false
	}
	return out, true
}
