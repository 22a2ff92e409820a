package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// File modes kubeadm uses.
const (
	CertMode os.FileMode = 0o644
	KeyMode  os.FileMode = 0o600
	// DirMode is the mode of the certificate directories: they hold private keys, so they are not
	// world-readable (kubeadm creates them 0755; its keys are 0600 either way). init and a control-plane join
	// take group and other permissions away from existing ones too (a joining node's discovery writes ca.crt
	// there first).
	DirMode os.FileMode = 0o700
)

// EnsureDirs makes the certificates directory and, for a stacked etcd, its etcd directory DirMode, creating them
// where they are missing.
func EnsureDirs(fsys nodefs.FS, certDir string, stackedEtcd bool) error {
	dirs := []string{certDir}
	if stackedEtcd {
		dirs = append(dirs, path.Join(certDir, "etcd"))
	}
	for _, d := range dirs {
		if err := fsys.MkdirPrivate(d, DirMode); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// Action says what Ensure did for one phase.
type Action string

// Actions.
const (
	Generated Action = "generated"
	Reused    Action = "reused"
	Skipped   Action = "skipped"
)

// Result is the outcome of one phase, for the caller to report.
type Result struct {
	Phase  string
	Action Action
	// Files are the node paths of the phase's files.
	Files []string
	// Note explains a skip or an unusual reuse ("external etcd", "external CA: ca.key absent").
	Note string
	// SANs lists the subject alternative names of a serving certificate, as kubeadm prints them.
	SANs []string
}

// Dir returns the node path of the cluster's certificates directory.
func Dir(cluster *config.Cluster) string {
	if cluster.CertificatesDir == "" {
		return config.DefaultCertificatesDir
	}
	return cluster.CertificatesDir
}

// EnsureAll makes sure every certificate of the tree and the service-account key pair exist in fsys (the node's
// disk, or memory) and are valid for the cluster and this node: missing ones are generated, existing ones are verified and kept, invalid ones are refused with an error
// naming the file. The CAs and the service-account key are done concurrently, then each CA's leaves as soon as
// their CA is ready. Results come in phase order; the error joins every phase's error, in phase order.
func EnsureAll(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, src Source) ([]Result, error) {
	src = src.Freeze()
	if err := EnsureDirs(fsys, cluster.CertificatesDir, cluster.Etcd.External == nil); err != nil {
		return nil, err
	}
	specs := Specs()
	results := make([]*Result, len(specs)+1)
	errs := make([]error, len(specs)+1)
	var wg sync.WaitGroup
	for i, s := range specs {
		if !s.IsCA() {
			continue
		}
		wg.Go(func() {
			ca, res, err := ensureCA(ctx, fsys, cluster, node, s, src)
			results[i], errs[i] = res, err
			if err != nil {
				return // the leaves would only repeat that their CA is unusable
			}
			for j, l := range specs {
				if l.CAName != s.Name {
					continue
				}
				wg.Go(func() { results[j], errs[j] = ensureLeaf(ctx, fsys, cluster, node, l, ca, src) })
			}
		})
	}
	wg.Go(func() { results[len(specs)], errs[len(specs)] = ensureSA(ctx, fsys, cluster, src) })
	wg.Wait()
	var out []Result
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, errors.Join(errs...)
}

// Ensure runs one phase by name (see Phases): a CA, a leaf whose CA must already be on disk, or "sa".
func Ensure(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, name string, src Source) (Result, error) {
	src = src.Freeze()
	// init runs its certificate phases one by one (and some at once), not through EnsureAll: each makes sure of
	// the directories' mode itself.
	if err := EnsureDirs(fsys, Dir(cluster), cluster.Etcd.External == nil); err != nil {
		return Result{}, err
	}
	if name == SAPhase {
		r, err := ensureSA(ctx, fsys, cluster, src)
		return deref(r), err
	}
	s, ok := SpecByName(name)
	if !ok {
		var names []string
		for _, p := range Phases() {
			names = append(names, p.Name)
		}
		return Result{}, fmt.Errorf("unknown certificate phase %q: known phases are %s", name, strings.Join(names, ", "))
	}
	if s.IsCA() {
		_, r, err := ensureCA(ctx, fsys, cluster, node, s, src)
		return deref(r), err
	}
	if skip := skipReason(cluster, s); skip != "" {
		return Result{Phase: s.Name, Action: Skipped, Note: skip}, nil
	}
	caSpec, _ := SpecByName(s.CAName)
	dir := Dir(cluster)
	if !fsys.Exists(caSpec.CertPath(dir)) {
		return Result{}, fmt.Errorf("the CA certificate %s does not exist: run the certs/%s phase first, or provide the CA", caSpec.CertPath(dir), caSpec.Name)
	}
	ca, err := loadCA(fsys, dir, caSpec, src.now())
	if err != nil {
		return Result{}, err
	}
	r, err := ensureLeaf(ctx, fsys, cluster, node, s, ca, src)
	return deref(r), err
}

func deref(r *Result) Result {
	if r == nil {
		return Result{}
	}
	return *r
}

func skipReason(cluster *config.Cluster, s Spec) string {
	if s.LocalEtcdOnly && cluster.Etcd.External != nil {
		return "external etcd"
	}
	return ""
}

// LoadCA reads the CA spec named caName from the cluster's certificates directory. The key is optional: without
// it the CA is external and CA.Key is nil. The CA must be a CA, currently valid, and match its key.
func LoadCA(fsys nodefs.FS, cluster *config.Cluster, caName string, now time.Time) (CA, error) {
	s, ok := SpecByName(caName)
	if !ok || !s.IsCA() {
		return CA{}, fmt.Errorf("%q is not a CA of the certificate tree", caName)
	}
	return loadCA(fsys, Dir(cluster), s, now)
}

func loadCA(fsys nodefs.FS, dir string, s Spec, now time.Time) (CA, error) {
	crtPath, keyPath := s.CertPath(dir), s.KeyPath(dir)
	certPEM, err := fsys.ReadFile(crtPath)
	if err != nil {
		return CA{}, fmt.Errorf("read CA certificate: %w", err)
	}
	ca, err := ParseCA(certPEM, nil)
	if err != nil {
		return CA{}, fmt.Errorf("CA certificate %s: %w; replace it with a valid CA certificate, or remove it to generate a new CA", crtPath, err)
	}
	if err := checkPeriod(ca.Cert, crtPath, now, "renew the CA (kubeboot never replaces an existing CA)"); err != nil {
		return CA{}, err
	}
	if !fsys.Exists(keyPath) {
		return ca, nil
	}
	keyPEM, err := fsys.ReadFile(keyPath)
	if err != nil {
		return CA{}, fmt.Errorf("read CA key: %w", err)
	}
	if ca.Key, err = ParsePrivateKeyPEM(keyPEM); err != nil {
		return CA{}, fmt.Errorf("CA key %s: %w; replace it with the key of %s", keyPath, err, crtPath)
	}
	if !KeyMatches(ca.Cert, ca.Key) {
		return CA{}, fmt.Errorf("CA key %s does not belong to the certificate %s; put back the matching key, or remove both to generate a new CA", keyPath, crtPath)
	}
	return ca, nil
}

func ensureCA(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, s Spec, src Source) (CA, *Result, error) {
	if skip := skipReason(cluster, s); skip != "" {
		return CA{}, &Result{Phase: s.Name, Action: Skipped, Note: skip}, nil
	}
	if err := ctx.Err(); err != nil {
		return CA{}, nil, err
	}
	dir := Dir(cluster)
	crtPath, keyPath := s.CertPath(dir), s.KeyPath(dir)
	res := &Result{Phase: s.Name, Files: []string{crtPath, keyPath}}
	hasCrt, hasKey := fsys.Exists(crtPath), fsys.Exists(keyPath)
	switch {
	case hasCrt:
		ca, err := loadCA(fsys, dir, s, src.now())
		if err != nil {
			return CA{}, nil, err
		}
		res.Action = Reused
		if ca.Key == nil {
			res.Files = []string{crtPath}
			res.Note = fmt.Sprintf("external CA: %s is absent, so the certificates it signs must be provided", keyPath)
		}
		return ca, res, nil
	case hasKey:
		return CA{}, nil, fmt.Errorf("found the CA key %s but not its certificate %s; provide the certificate, or remove the key to generate a new CA", keyPath, crtPath)
	}
	req, err := s.Request(cluster, node)
	if err != nil {
		return CA{}, nil, err
	}
	kp, err := NewCA(src, req)
	if err != nil {
		return CA{}, nil, err
	}
	if err := writePair(fsys, crtPath, keyPath, kp); err != nil {
		return CA{}, nil, err
	}
	ca, err := ParseCA(kp.Cert, kp.Key)
	if err != nil {
		return CA{}, nil, fmt.Errorf("generated CA %s: %w", crtPath, err)
	}
	res.Action = Generated
	return ca, res, nil
}

func ensureLeaf(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, s Spec, ca CA, src Source) (*Result, error) {
	if skip := skipReason(cluster, s); skip != "" {
		return &Result{Phase: s.Name, Action: Skipped, Note: skip}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := Dir(cluster)
	caSpec, _ := SpecByName(s.CAName)
	crtPath, keyPath := s.CertPath(dir), s.KeyPath(dir)
	req, err := s.Request(cluster, node)
	if err != nil {
		return nil, err
	}
	res := &Result{Phase: s.Name, Files: []string{crtPath, keyPath}}
	if slices.Contains(s.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		res.SANs = sanStrings(req.DNSNames, req.IPs)
	}
	hasCrt, hasKey := fsys.Exists(crtPath), fsys.Exists(keyPath)
	if hasCrt || hasKey {
		if err := verifyLeaf(fsys, crtPath, keyPath, caSpec.CertPath(dir), ca, req, src.now()); err != nil {
			return nil, err
		}
		res.Action = Reused
		return res, nil
	}
	if ca.Key == nil {
		return nil, fmt.Errorf("external CA mode (%s present, %s absent): kubeboot cannot sign %s; provide %s and %s signed by that CA, or provide %s",
			caSpec.CertPath(dir), caSpec.KeyPath(dir), crtPath, crtPath, keyPath, caSpec.KeyPath(dir))
	}
	kp, err := NewSignedCert(src, ca, req)
	if err != nil {
		return nil, err
	}
	if err := writePair(fsys, crtPath, keyPath, kp); err != nil {
		return nil, err
	}
	res.Action = Generated
	return res, nil
}

// verifyLeaf accepts an existing pair only if the key matches, the certificate is currently valid, chains to
// the CA and covers every required name (more names are fine).
func verifyLeaf(fsys nodefs.FS, crtPath, keyPath, caPath string, ca CA, req Request, now time.Time) error {
	remedy := fmt.Sprintf("remove %s and %s to generate a new pair", crtPath, keyPath)
	switch {
	case !fsys.Exists(crtPath):
		return fmt.Errorf("found %s but not %s; provide the certificate, or %s", keyPath, crtPath, remedy)
	case !fsys.Exists(keyPath):
		return fmt.Errorf("found %s but not %s; provide the key, or %s", crtPath, keyPath, remedy)
	}
	certPEM, err := fsys.ReadFile(crtPath)
	if err != nil {
		return fmt.Errorf("read certificate: %w", err)
	}
	chain, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return fmt.Errorf("certificate %s: %w; %s", crtPath, err, remedy)
	}
	cert := chain[0]
	keyPEM, err := fsys.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("key %s: %w; %s", keyPath, err, remedy)
	}
	if !KeyMatches(cert, key) {
		return fmt.Errorf("key %s does not belong to the certificate %s; %s", keyPath, crtPath, remedy)
	}
	if err := checkPeriod(cert, crtPath, now, remedy); err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := cert.Verify(opts); err != nil {
		return fmt.Errorf("certificate %s is not signed by the CA in %s: %w; %s signed by this CA, or put back the CA that signed it", crtPath, caPath, err, remedy)
	}
	var missing []string
	for _, n := range sanStrings(req.DNSNames, req.IPs) {
		if cert.VerifyHostname(n) != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("certificate %s lacks the required names %s (it has %s); %s, or fix the configuration if those names are wrong",
			crtPath, strings.Join(missing, ", "), strings.Join(sanStrings(cert.DNSNames, cert.IPAddresses), ", "), remedy)
	}
	return nil
}

func checkPeriod(cert *x509.Certificate, file string, now time.Time, remedy string) error {
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("certificate %s expired at %s; %s", file, cert.NotAfter.UTC().Format(time.RFC3339), remedy)
	case now.Before(cert.NotBefore):
		return fmt.Errorf("certificate %s is not valid before %s (now is %s); check the clock, or %s",
			file, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), remedy)
	}
	return nil
}

func sanStrings(dns []string, ips []net.IP) []string {
	out := slices.Clone(dns)
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// writePair writes the key before the certificate: a crash in between leaves a key without a certificate,
// which the next run refuses with a clear message, never a certificate that looks like an external CA's.
func writePair(fsys nodefs.FS, crtPath, keyPath string, kp KeyPair) error {
	if err := fsys.WriteFile(keyPath, kp.Key, KeyMode); err != nil {
		return err
	}
	return fsys.WriteFile(crtPath, kp.Cert, CertMode)
}

// ensureSA makes the service-account signing key pair. kubeadm uses the configured encryptionAlgorithm for
// it too. An existing sa.key is kept; a missing sa.pub is derived from it.
func ensureSA(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, src Source) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := Dir(cluster)
	keyPath, pubPath := path.Join(dir, ServiceAccountKeyName), path.Join(dir, ServiceAccountPubName)
	res := &Result{Phase: SAPhase, Files: []string{keyPath, pubPath}}
	hasKey, hasPub := fsys.Exists(keyPath), fsys.Exists(pubPath)
	if !hasKey && hasPub {
		return nil, fmt.Errorf("found %s but not %s; provide the private key, or remove %s to generate a new pair", pubPath, keyPath, pubPath)
	}
	var key crypto.Signer
	if hasKey {
		keyPEM, err := fsys.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("read service-account key: %w", err)
		}
		if key, err = ParsePrivateKeyPEM(keyPEM); err != nil {
			return nil, fmt.Errorf("service-account key %s: %w; replace it, or remove %s and %s to generate a new pair", keyPath, err, keyPath, pubPath)
		}
		res.Action = Reused
		if hasPub {
			pubPEM, err := fsys.ReadFile(pubPath)
			if err != nil {
				return nil, fmt.Errorf("read service-account public key: %w", err)
			}
			pubs, err := keyutil.ParsePublicKeysPEM(pubPEM)
			if err != nil {
				return nil, fmt.Errorf("service-account public key %s: %w; remove it to derive it from %s again", pubPath, err, keyPath)
			}
			pub, ok := pubs[0].(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !pub.Equal(key.Public()) {
				return nil, fmt.Errorf("service-account public key %s does not belong to %s; remove %s to derive it from %s again", pubPath, keyPath, pubPath, keyPath)
			}
			return res, nil
		}
		res.Note = fmt.Sprintf("%s derived from the existing %s", pubPath, keyPath)
	} else {
		var err error
		if key, err = src.newKey(cluster.EncryptionAlgorithm); err != nil {
			return nil, fmt.Errorf("service-account key: %w", err)
		}
		keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
		if err != nil {
			return nil, fmt.Errorf("service-account key: %w", err)
		}
		if err := fsys.WriteFile(keyPath, keyPEM, KeyMode); err != nil {
			return nil, err
		}
		res.Action = Generated
	}
	pubPEM, err := EncodePublicKeyPEM(key.Public())
	if err != nil {
		return nil, fmt.Errorf("service-account public key: %w", err)
	}
	if err := fsys.WriteFile(pubPath, pubPEM, CertMode); err != nil {
		return nil, err
	}
	return res, nil
}
