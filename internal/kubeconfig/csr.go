package kubeconfig

import (
	"fmt"
	"path"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

// WriteCSRs writes, for every kubeconfig file of a control-plane node, the file without its certificates (only
// the client key; the CA and the client certificate are added once the external CA has signed) and the client
// certificate's signing request next to it (<name>.conf.csr), into dir, as kubeadm's `certs generate-csr` does.
// It refuses to overwrite either, and returns the file names written.
func WriteCSRs(fsys nodefs.FS, dir string, cluster *config.Cluster, node *config.Node, src pki.Source) ([]string, error) {
	specs, err := Specs(cluster, node)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, s := range specs {
		name := path.Base(s.File)
		file, csrFile := path.Join(dir, name), path.Join(dir, name+".csr")
		for _, p := range []string{file, csrFile} {
			if fsys.Exists(p) {
				return written, fmt.Errorf("%s already exists: move it away to generate a new key and CSR for %s", p, name)
			}
		}
		csrPEM, keyPEM, err := pki.NewCSR(src, pki.Request{CommonName: s.User, Organization: s.Organization, Algorithm: cluster.EncryptionAlgorithm})
		if err != nil {
			return written, fmt.Errorf("%s: %w", name, err)
		}
		if err := Write(fsys, file, WithCerts(s.Server, cluster.ClusterName, s.User, nil, nil, keyPEM)); err != nil {
			return written, err
		}
		if err := fsys.WriteFile(csrFile, csrPEM, pki.CSRMode); err != nil {
			return written, err
		}
		written = append(written, name)
	}
	return written, nil
}
