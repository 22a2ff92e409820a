package localendpoint

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// ErrDynamic says a binary needs a program interpreter or shared libraries, which the pause image does not have.
var ErrDynamic = errors.New("dynamically linked")

// CheckStatic returns nil when the ELF executable r is statically linked: it has no program interpreter
// (PT_INTERP) and needs no shared library (DT_NEEDED). name only goes into the error.
func CheckStatic(name string, r io.ReaderAt) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", name, err)
	}
	defer f.Close()
	var needs []string
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, err := io.ReadAll(p.Open())
		if err != nil {
			return fmt.Errorf("%s: read its program interpreter: %w", name, err)
		}
		needs = append(needs, "the program interpreter "+string(bytes.TrimRight(interp, "\x00")))
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: read its dynamic section: %w", name, err)
	}
	if len(libs) > 0 {
		needs = append(needs, "the libraries "+strings.Join(libs, ", "))
	}
	if len(needs) > 0 {
		return fmt.Errorf("%s is %w (it needs %s): the node-local API endpoint runs it in the pause image, which has "+
			"no C library; build kubeboot with CGO_ENABLED=0", name, ErrDynamic, strings.Join(needs, " and "))
	}
	return nil
}

// InstallBinary copies the executable src of this machine (os.Executable(), the running kubeboot) to the node
// path dst of fs (HostBinaryPath), atomically (a temporary file renamed over dst) with mode 0755, after checking
// that it is statically linked. A Pod running the old file keeps it until it restarts: the rename gives dst a new
// inode, and the Pod's mount holds the old one.
func InstallBinary(fs nodefs.FS, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install kubeboot for the node-local API endpoint: %w", err)
	}
	defer f.Close()
	if err := CheckStatic(src, f); err != nil {
		return fmt.Errorf("install kubeboot for the node-local API endpoint: %w", err)
	}
	// CheckStatic read f through ReadAt: f is still at its start.
	if _, err := fs.WriteFileFrom(dst, f, 0o755); err != nil {
		return fmt.Errorf("install kubeboot for the node-local API endpoint: %w", err)
	}
	return nil
}

// Install installs the kubeboot at src as HostBinaryPath and writes the endpoint's static Pod, saying so on out.
func Install(fsys nodefs.FS, out io.Writer, src string, pod *corev1.Pod) error {
	if err := InstallBinary(fsys, src, HostBinaryPath); err != nil {
		return err
	}
	fmt.Fprintf(out, "  installed %s as %s\n", src, HostBinaryPath)
	if err := manifests.Write(fsys, Name, pod); err != nil {
		return err
	}
	fmt.Fprintf(out, "  wrote %s\n", staticpod.Path(Name))
	return nil
}
