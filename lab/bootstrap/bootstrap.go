// Package bootstrap turns running lab nodes into a cluster with a kubeadm-compatible tool: upstream
// kubeadm, or kubeboot, driven by the same kubeadm v1beta4 configuration.
package bootstrap

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	"kubeboot.dev/kubeboot/lab/node"
)

// Target is a lab node a bootstrapper acts on.
type Target struct {
	Spec node.Spec
	// Run runs a command inside the node, its output going to out.
	Run func(ctx context.Context, out io.Writer, args ...string) error
}

// Cluster is what every node's configuration shares.
type Cluster struct {
	KubernetesVersion string
	PodSubnet         string // the cluster's pod CIDR, e.g. 10.244.0.0/16
	ServiceSubnet     string // e.g. 10.96.0.0/12
	// ControlPlaneEndpoint (host:port) is set when there is more than one control plane: the lab's
	// load balancer in front of every API server. kubeadm refuses control-plane joins without it; it
	// becomes the server of every kubeconfig and a SAN of every API server certificate.
	ControlPlaneEndpoint string
	Token                string // bootstrap token id.secret; a secret, never logged
	// CertificateKey encrypts the uploaded control-plane certificates (hex, 32 bytes); only with
	// more than one control plane.
	CertificateKey string
	// CertificateValidityPeriod, when set, is the ClusterConfiguration's certificateValidityPeriod: the lifetime
	// of every leaf certificate the bootstrapper signs (kubeadm's default is a year). Short ones let a test
	// watch the cluster outlive its first certificates.
	CertificateValidityPeriod time.Duration
	// NodeLocalAPIEndpoint adds kubeboot's own document turning on the node-local API endpoint (kubeboot only):
	// every node reaches the API servers through 127.0.0.1:7445, with no load balancer.
	NodeLocalAPIEndpoint bool
}

// JoinInfo is what Init learned that joining nodes need.
type JoinInfo struct {
	APIServerEndpoint string   // host:port: the control-plane endpoint, else the first control plane
	CACertHashes      []string // sha256:<hex> of the cluster CA's public key
}

// Bootstrapper creates a cluster on a first control-plane node and joins others to it.
type Bootstrapper interface {
	Name() string
	Init(ctx context.Context, cp Target, c Cluster) (JoinInfo, error)
	// Join adds n as a worker, or as another control plane if controlPlane is set.
	Join(ctx context.Context, n Target, c Cluster, j JoinInfo, controlPlane bool) error
}

// New returns the bootstrapper of that name using the binaries in binDir.
func New(name, binDir string) (Bootstrapper, error) {
	switch name {
	case "kubeadm":
		return &CLI{Tool: "kubeadm", BinDir: binDir}, nil
	case "kubeboot":
		return &CLI{Tool: "kubeboot", BinDir: binDir, CheckCommands: true}, nil
	default:
		return nil, fmt.Errorf("unknown bootstrapper %q: want kubeadm or kubeboot", name)
	}
}

// NewToken returns a random bootstrap token in kubeadm's format [a-z0-9]{6}.[a-z0-9]{16}.
func NewToken() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 22)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	out := make([]byte, 0, 23)
	for i, c := range b {
		if i == 6 {
			out = append(out, '.')
		}
		// 256 % 36 != 0 leaves a slight bias; harmless for a lab token that lives for one `lab up`.
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out), nil
}

// NewCertificateKey returns 32 random bytes as hex, the format of kubeadm's --certificate-key.
func NewCertificateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("certificate key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// CACertHash is kubeadm's discovery pin of a CA certificate file: sha256 of its public key info.
func CACertHash(caFile string) (string, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return "", fmt.Errorf("cluster CA: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("cluster CA %s: no PEM certificate", caFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("cluster CA %s: %w", caFile, err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
