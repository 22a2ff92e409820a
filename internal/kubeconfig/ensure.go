package kubeconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

// EnsureAll makes sure every kubeconfig file of init exists and fits the configuration (see EnsureSome).
func EnsureAll(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, src pki.Source) ([]pki.Result, error) {
	return EnsureSome(ctx, fsys, cluster, node, nil, src)
}

// EnsureSome makes sure the kubeconfig files of the named phases (all of them when names is nil) exist and fit
// the cluster's and the node's configuration, concurrently: each one needs a new key. Results come in phase
// order; the error joins every file's error in phase order.
func EnsureSome(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, names []string, src pki.Source) ([]pki.Result, error) {
	specs, ca, src, err := prepare(fsys, cluster, node, src)
	if err != nil {
		return nil, err
	}
	if names != nil {
		for _, n := range names {
			if !slices.ContainsFunc(specs, func(s Spec) bool { return s.Name == n }) {
				return nil, unknownPhase(n)
			}
		}
		specs = slices.DeleteFunc(specs, func(s Spec) bool { return !slices.Contains(names, s.Name) })
	}
	results := make([]*pki.Result, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Go(func() { results[i], errs[i] = ensure(ctx, fsys, cluster, s, ca, src) })
	}
	wg.Wait()
	var out []pki.Result
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, errors.Join(errs...)
}

// Ensure runs one kubeconfig phase by name (see Phases).
func Ensure(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, name string, src pki.Source) (pki.Result, error) {
	return EnsureIn(ctx, fsys, cluster, node, config.KubernetesDir, name, src)
}

// EnsureIn is Ensure with the file in dir instead of /etc/kubernetes (kubeadm's --kubeconfig-dir of
// `init phase kubeconfig`).
func EnsureIn(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, node *config.Node, dir, name string, src pki.Source) (pki.Result, error) {
	specs, ca, src, err := prepare(fsys, cluster, node, src)
	if err != nil {
		return pki.Result{}, err
	}
	i := slices.IndexFunc(specs, func(s Spec) bool { return s.Name == name })
	if i < 0 {
		return pki.Result{}, unknownPhase(name)
	}
	specs[i].File = path.Join(dir, path.Base(specs[i].File))
	r, err := ensure(ctx, fsys, cluster, specs[i], ca, src)
	if err != nil {
		return pki.Result{}, err
	}
	return *r, nil
}

func unknownPhase(name string) error {
	var names []string
	for _, p := range Phases() {
		names = append(names, p.Name)
	}
	return fmt.Errorf("unknown kubeconfig phase %q: known phases are %s", name, strings.Join(names, ", "))
}

func prepare(fsys nodefs.FS, cluster *config.Cluster, node *config.Node, src pki.Source) ([]Spec, pki.CA, pki.Source, error) {
	specs, err := Specs(cluster, node)
	if err != nil {
		return nil, pki.CA{}, src, err
	}
	src = src.Freeze()
	t := src.Now()
	caSpec, _ := pki.SpecByName(pki.CAPhase)
	caPath := caSpec.CertPath(pki.Dir(cluster))
	if !fsys.Exists(caPath) {
		return nil, pki.CA{}, src, fmt.Errorf("the CA certificate %s does not exist: run the certs/ca phase first, or provide the CA", caPath)
	}
	ca, err := pki.LoadCA(fsys, cluster, pki.CAPhase, t)
	if err != nil {
		return nil, pki.CA{}, src, err
	}
	return specs, ca, src, nil
}

func ensure(ctx context.Context, fsys nodefs.FS, cluster *config.Cluster, s Spec, ca pki.CA, src pki.Source) (*pki.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &pki.Result{Phase: s.Name, Files: []string{s.File}}
	if fsys.Exists(s.File) {
		if err := verify(fsys, s, ca); err != nil {
			return nil, err
		}
		res.Action = pki.Reused
		return res, nil
	}
	if ca.Key == nil {
		caSpec, _ := pki.SpecByName(pki.CAPhase)
		dir := pki.Dir(cluster)
		return nil, fmt.Errorf("external CA mode (%s present, %s absent): kubeboot cannot sign the client certificate of %s; provide %s, or provide %s",
			caSpec.CertPath(dir), caSpec.KeyPath(dir), s.File, s.File, caSpec.KeyPath(dir))
	}
	kc, err := Build(cluster, s, ca, src)
	if err != nil {
		return nil, err
	}
	if err := Write(fsys, s.File, kc); err != nil {
		return nil, err
	}
	res.Action = pki.Generated
	return res, nil
}

// verify accepts an existing kubeconfig only if its current cluster trusts the cluster CA and points at the
// expected server; like kubeadm, it does not judge the credentials.
func verify(fsys nodefs.FS, s Spec, ca pki.CA) error {
	remedy := fmt.Sprintf("remove %s to generate a new one", s.File)
	kc, err := Read(fsys, s.File)
	if err != nil {
		return fmt.Errorf("%w; %s", err, remedy)
	}
	cluster, _, err := Current(kc)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w; %s", s.File, err, remedy)
	}
	caData := bytes.TrimSpace(cluster.CertificateAuthorityData)
	if len(caData) == 0 && cluster.CertificateAuthority != "" {
		if caData, err = fsys.ReadFile(cluster.CertificateAuthority); err != nil {
			return fmt.Errorf("kubeconfig %s: read its certificate-authority: %w; %s", s.File, err, remedy)
		}
	}
	current, err := certutil.ParseCertsPEM(caData)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: its certificate authority data: %w; %s", s.File, err, remedy)
	}
	trusted, err := certutil.ParseCertsPEM(ca.PEM)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	if !slices.ContainsFunc(trusted, current[0].Equal) {
		return fmt.Errorf("kubeconfig %s trusts a different CA (%q, %s) than the cluster CA (%q, %s); %s",
			s.File, current[0].Subject.CommonName, pki.DiscoveryHash(current[0]), ca.Cert.Subject.CommonName, pki.DiscoveryHash(ca.Cert), remedy)
	}
	if cluster.Server != s.Server {
		return fmt.Errorf("kubeconfig %s points at %s, expected %s; %s, or fix controlPlaneEndpoint/localAPIEndpoint in the configuration",
			s.File, cluster.Server, s.Server, remedy)
	}
	return nil
}
