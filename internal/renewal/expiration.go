package renewal

import (
	"errors"
	"fmt"
	"io"
	"path"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"kubeboot.dev/kubeboot/internal/config"
)

// ExpirationInfo is kubeadm's output.kubeadm.k8s.io/v1alpha3 CertificateExpirationInfo, what `certs
// check-expiration -o json|yaml` prints.
type ExpirationInfo struct {
	Kind                   string        `json:"kind"`
	APIVersion             string        `json:"apiVersion"`
	Certificates           []Certificate `json:"certificates"`
	CertificateAuthorities []Certificate `json:"certificateAuthorities"`
}

// Certificate is one row of ExpirationInfo.
type Certificate struct {
	Name                string      `json:"name"`
	ExpirationDate      metav1.Time `json:"expirationDate"`
	ResidualTimeSeconds int64       `json:"residualTime"`
	ExternallyManaged   bool        `json:"externallyManaged"`
	CAName              string      `json:"caName,omitempty"`
	Missing             bool        `json:"missing"`
}

// Expiration reads every certificate and CA of the set and reports its expiry at now. A missing file is a
// Missing row, as in kubeadm; a file that cannot be read or parsed is an error naming it.
func (s *Set) Expiration(now time.Time) (*ExpirationInfo, error) {
	info := &ExpirationInfo{Kind: "CertificateExpirationInfo", APIVersion: "output.kubeadm.k8s.io/v1alpha3"}
	for _, c := range s.Certs {
		row, err := s.row(Cert{Name: c.Name, File: c.File, Kubeconfig: c.Kubeconfig}, c.CAName, now)
		if err != nil {
			return nil, err
		}
		row.CAName = c.CAName
		if row.Missing {
			row.CAName = ""
		}
		info.Certificates = append(info.Certificates, row)
	}
	for _, ca := range s.CAs {
		row, err := s.row(Cert{Name: ca.Name, File: ca.CertFile}, ca.Name, now)
		if err != nil {
			return nil, err
		}
		info.CertificateAuthorities = append(info.CertificateAuthorities, row)
	}
	return info, nil
}

func (s *Set) row(c Cert, caName string, now time.Time) (Certificate, error) {
	cert, err := s.Read(c)
	if errors.Is(err, ErrMissing) {
		return Certificate{Name: c.Name, Missing: true}, nil
	}
	if err != nil {
		return Certificate{}, fmt.Errorf("certificate %s: %w", c.Name, err)
	}
	return Certificate{
		Name:                c.Name,
		ExpirationDate:      metav1.Time{Time: cert.NotAfter},
		ResidualTimeSeconds: int64(residual(cert, now) / time.Second),
		ExternallyManaged:   s.ExternallyManaged(caName),
	}, nil
}

// expiresFormat is how kubeadm prints an expiry date.
const expiresFormat = "Jan 02, 2006 15:04 MST"

// PrintText writes kubeadm's two tables: the certificates, then the CAs.
func (info *ExpirationInfo) PrintText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED")
	for _, c := range info.Certificates {
		if c.Missing {
			fmt.Fprintf(tw, "!MISSING! %s\t\t\t\t\n", c.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%-8v\n", c.Name, c.ExpirationDate.Format(expiresFormat), residualText(c), c.CAName, yesNo(c.ExternallyManaged))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
	for _, c := range info.CertificateAuthorities {
		if c.Missing {
			fmt.Fprintf(tw, "!MISSING! %s\t\t\t\n", c.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%-8v\n", c.Name, c.ExpirationDate.Format(expiresFormat), residualText(c), yesNo(c.ExternallyManaged))
	}
	return tw.Flush()
}

// residualText is kubeadm's RESIDUAL TIME: apimachinery's human duration ("364d", "9y"), "<invalid>" once expired.
func residualText(c Certificate) string {
	return duration.HumanDuration(time.Duration(c.ResidualTimeSeconds) * time.Second)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Kubelet certificates are not kubeadm's to renew (the kubelet rotates its client certificate, and its serving
// certificate is its own), but a node whose kubelet certificate has expired is as broken as one whose API server
// certificate has, so check-expiration shows them too.
var kubeletCerts = []struct{ name, file string }{
	{"kubelet client", path.Join(config.KubeletDir, "pki", "kubelet-client-current.pem")},
	{"kubelet serving", path.Join(config.KubeletDir, "pki", "kubelet.crt")},
}

// KubeletCert is one of the kubelet's certificates; NotAfter is zero when the file is absent.
type KubeletCert struct {
	Name, File string
	NotAfter   time.Time
	Residual   time.Duration
}

// KubeletCerts reads the kubelet's client and serving certificates; an absent one is left out.
func KubeletCerts(s *Set, now time.Time) ([]KubeletCert, error) {
	var out []KubeletCert
	for _, k := range kubeletCerts {
		cert, err := s.Read(Cert{Name: k.name, File: k.file})
		if errors.Is(err, ErrMissing) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kubelet certificate: %w", err)
		}
		out = append(out, KubeletCert{Name: k.name, File: k.file, NotAfter: cert.NotAfter, Residual: residual(cert, now)})
	}
	return out, nil
}

// PrintKubelet writes the kubelet's certificates as a third table, after kubeadm's two.
func PrintKubelet(w io.Writer, certs []KubeletCert) error {
	if len(certs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "KUBELET CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tFILE")
	for _, k := range certs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.NotAfter.Format(expiresFormat), duration.HumanDuration(k.Residual), k.File)
	}
	return tw.Flush()
}

// WarnWithin is how close to its expiry a certificate gets a warning.
const WarnWithin = 30 * 24 * time.Hour

// Warnings are one line per certificate, CA or kubelet certificate that expires within WarnWithin of now (or
// has expired), saying what to do.
func Warnings(info *ExpirationInfo, kubelet []KubeletCert) []string {
	var out []string
	for _, c := range info.Certificates {
		if c.Missing || time.Duration(c.ResidualTimeSeconds)*time.Second > WarnWithin {
			continue
		}
		what := "renew it with 'kubeboot certs renew " + c.Name + "'"
		if c.ExternallyManaged {
			what = "its CA " + c.CAName + " is external: have it signed again by whoever holds that CA's key"
		}
		out = append(out, fmt.Sprintf("%s %s: %s", c.Name, expiresText(c.ResidualTimeSeconds, c.ExpirationDate.Time), what))
	}
	for _, c := range info.CertificateAuthorities {
		if c.Missing || time.Duration(c.ResidualTimeSeconds)*time.Second > WarnWithin {
			continue
		}
		out = append(out, fmt.Sprintf("CA %s %s: every certificate it signed stops being trusted then; a CA is not renewed by 'certs renew'", c.Name, expiresText(c.ResidualTimeSeconds, c.ExpirationDate.Time)))
	}
	for _, k := range kubelet {
		if k.Residual > WarnWithin {
			continue
		}
		what := "the kubelet renews it itself while it can reach the API server (rotateCertificates); check its log"
		if k.Name == "kubelet serving" {
			what = "restart the kubelet to have it make a new self-signed one, or enable serverTLSBootstrap"
		}
		out = append(out, fmt.Sprintf("%s certificate %s %s: %s", k.Name, k.File, expiresText(int64(k.Residual/time.Second), k.NotAfter), what))
	}
	return out
}

func expiresText(residualSeconds int64, notAfter time.Time) string {
	if residualSeconds <= 0 {
		return "expired on " + notAfter.Format(expiresFormat)
	}
	return "expires in " + duration.HumanDuration(time.Duration(residualSeconds)*time.Second) + " (" + notAfter.Format(expiresFormat) + ")"
}

// Due reports whether c is to be renewed at now by `certs renew --if-expires-within within`: its residual time
// (as check-expiration shows it) is below within, or it has expired. A missing certificate is not due: there
// is nothing to renew.
func (s *Set) Due(c Cert, now time.Time, within time.Duration) (bool, error) {
	cert, err := s.Read(c)
	if errors.Is(err, ErrMissing) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("certificate %s: %w", c.Name, err)
	}
	return residual(cert, now) < within, nil
}
