// Package copycerts moves the certificates and keys every control-plane node shares (the cluster CAs and the
// service-account key pair) from one control-plane node to another through the cluster, as kubeadm does with
// `init --upload-certs` and `join --control-plane --certificate-key`: the Secret kube-system/kubeadm-certs holds
// each file encrypted with AES-256-GCM under the certificate key, a random 32-byte key shown as 64 hex digits.
//
// The format is kubeadm's to the byte (Secret keys, nonce-prefixed GCM values, owner token, RBAC), so a node
// joined with upstream kubeadm can read what kubeboot uploads and the other way round.
package copycerts

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/token"
)

// kubeadm's names and sizes.
const (
	// SecretName is the Secret in kube-system that carries the encrypted files.
	SecretName = "kubeadm-certs"
	// RBACName names the Role and RoleBinding that let bootstrap tokens get the Secret.
	RBACName = "kubeadm:kubeadm-certs"
	// TokenTTL is the life of the bootstrap token that owns the Secret: when the token expires, the
	// controller-manager's tokencleaner deletes it and the garbage collector deletes the Secret with it.
	TokenTTL = 2 * time.Hour
	// TokenDescription is the description kubeadm gives that token.
	TokenDescription = "Proxy for managing TTL for the kubeadm-certs secret"
	// KeySize is the certificate key's length in bytes (AES-256).
	KeySize = 32
)

// reuploadHint is what to do when the Secret is gone or the key does not fit.
const reuploadHint = "re-upload with `kubeboot init phase upload-certs --upload-certs` on a control-plane node"

// Errors Download returns, wrapped with advice; check with errors.Is.
var (
	ErrMalformedKey   = errors.New("malformed certificate key")
	ErrWrongKey       = errors.New("the certificate key does not decrypt " + SecretName)
	ErrSecretNotFound = errors.New(SecretName + " not found")
)

// File is one shared file: its key in the Secret and where it lives on a node.
type File struct {
	SecretKey string
	Path      string
	// Private files are keys: written 0600, and must parse as a private key.
	Private bool
}

// Files lists what control-plane nodes share, as kubeadm does: the cluster CA, the front-proxy CA and the
// service-account key pair under certDir; with stacked etcd also the etcd CA (Secret keys etcd-ca.crt and
// etcd-ca.key), with external etcd instead the external etcd client files at their configured paths (Secret keys
// external-etcd-ca.crt, external-etcd.crt, external-etcd.key).
func Files(certDir string, external *config.ExternalEtcd) []File {
	in := func(name string) string { return path.Join(certDir, name) }
	files := []File{
		{SecretKey: "ca.crt", Path: in("ca.crt")},
		{SecretKey: "ca.key", Path: in("ca.key"), Private: true},
		{SecretKey: "front-proxy-ca.crt", Path: in("front-proxy-ca.crt")},
		{SecretKey: "front-proxy-ca.key", Path: in("front-proxy-ca.key"), Private: true},
		{SecretKey: pki.ServiceAccountPubName, Path: in(pki.ServiceAccountPubName)},
		{SecretKey: pki.ServiceAccountKeyName, Path: in(pki.ServiceAccountKeyName), Private: true},
	}
	if external == nil {
		return append(files,
			File{SecretKey: "etcd-ca.crt", Path: in("etcd/ca.crt")},
			File{SecretKey: "etcd-ca.key", Path: in("etcd/ca.key"), Private: true},
		)
	}
	return append(files,
		File{SecretKey: "external-etcd-ca.crt", Path: external.CAFile},
		File{SecretKey: "external-etcd.crt", Path: external.CertFile},
		File{SecretKey: "external-etcd.key", Path: external.KeyFile, Private: true},
	)
}

// NewCertificateKey returns a new random certificate key: 32 bytes from crypto/rand as 64 hex digits.
func NewCertificateKey() (string, error) {
	b := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("generate a certificate key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ParseKey decodes a certificate key. The error never repeats the key: it is a secret.
func ParseKey(key string) ([]byte, error) {
	if len(key) != 2*KeySize {
		return nil, fmt.Errorf("%w: it must be %d hexadecimal characters (%d random bytes), got %d characters; `kubeboot certs certificate-key` makes one",
			ErrMalformedKey, 2*KeySize, KeySize, len(key))
	}
	b, err := hex.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("%w: it must be %d hexadecimal characters (0-9, a-f); `kubeboot certs certificate-key` makes one",
			ErrMalformedKey, 2*KeySize)
	}
	return b, nil
}

// Encrypt seals plain with AES-GCM under key (16, 24 or 32 bytes) and returns the random 12-byte nonce
// followed by the ciphertext and tag: kubeadm's format.
func Encrypt(plain, key []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("generate a nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, nil), nil
}

// Decrypt opens what Encrypt sealed. A wrong key or altered data fails with ErrWrongKey.
func Decrypt(sealed, key []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%d bytes is too short for a %d-byte nonce and a %d-byte tag", len(sealed), aead.NonceSize(), aead.Overhead())
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Upload stores the shared files of this control-plane node in kube-system/kubeadm-certs, encrypted with the
// certificate key, and makes it expire with a new 2h bootstrap token that owns it. external is the
// ClusterConfiguration's etcd.external (nil for stacked etcd). A file that does not exist is stored as an
// empty value, as kubeadm does (an external CA has no ca.key; external etcd may have no client files).
// It also applies the Role and RoleBinding kubeadm:kubeadm-certs that let bootstrap tokens of the group
// system:bootstrappers:kubeadm:default-node-token get the Secret. API errors are retried until ctx ends.
func Upload(ctx context.Context, client kubernetes.Interface, fsys nodefs.FS, certDir, key string, external *config.ExternalEtcd) error {
	k, err := ParseKey(key)
	if err != nil {
		return err
	}
	data := map[string][]byte{}
	for _, f := range Files(certDir, external) {
		plain, err := fsys.ReadFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			data[f.SecretKey] = []byte{}
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s for %s/%s: %w", f.Path, metav1.NamespaceSystem, SecretName, err)
		}
		if data[f.SecretKey], err = Encrypt(plain, k); err != nil {
			return fmt.Errorf("encrypt %s: %w", f.Path, err)
		}
	}

	owner, err := createOwnerToken(ctx, client)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            SecretName,
			Namespace:       metav1.NamespaceSystem,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, corev1.SchemeGroupVersion.WithKind("Secret"))},
		},
		Data: data,
	}
	if err := apply.Object(ctx, client, secret); err != nil {
		return fmt.Errorf("upload the control-plane certificates: %w", err)
	}
	if err := apply.Objects(ctx, client, RBAC()...); err != nil {
		return fmt.Errorf("let bootstrap tokens read %s/%s: %w", metav1.NamespaceSystem, SecretName, err)
	}
	return nil
}

// RBAC returns the Role and RoleBinding kubeadm:kubeadm-certs: get on the Secret kubeadm-certs for the default
// node bootstrap token group.
func RBAC() []runtime.Object {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: RBACName, Namespace: metav1.NamespaceSystem},
		Rules: []rbacv1.PolicyRule{{
			Verbs:         []string{"get"},
			APIGroups:     []string{""},
			Resources:     []string{"secrets"},
			ResourceNames: []string{SecretName},
		}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: RBACName, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: RBACName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: token.DefaultGroup}},
	}
	return []runtime.Object{role, binding}
}

// createOwnerToken stores a new bootstrap token that lives 2h and returns its Secret as stored (with its UID).
func createOwnerToken(ctx context.Context, client kubernetes.Interface) (*corev1.Secret, error) {
	tok, err := token.Generate()
	if err != nil {
		return nil, err
	}
	s, err := token.Secret(config.BootstrapToken{
		Token:       tok.Value(),
		Description: TokenDescription,
		TTL:         &metav1.Duration{Duration: TokenTTL},
	}, time.Now())
	if err != nil {
		return nil, err
	}
	// kubeadm's token is only a clock: it has no usages and no groups, so it can neither authenticate nor sign
	// cluster-info. token.Secret defaults both for an ordinary token; drop them.
	for k := range s.Data {
		if strings.HasPrefix(k, bootstrapapi.BootstrapTokenUsagePrefix) || k == bootstrapapi.BootstrapTokenExtraGroupsKey {
			delete(s.Data, k)
		}
	}
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	var stored *corev1.Secret
	err = apply.Retry(ctx, func(ctx context.Context) error {
		out, err := secrets.Create(ctx, s, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Our own create that timed out on the way back, or (once in 36^6) another token's ID.
			out, err = secrets.Get(ctx, s.Name, metav1.GetOptions{})
			if err == nil && !bytes.Equal(out.Data[bootstrapapi.BootstrapTokenSecretKey], s.Data[bootstrapapi.BootstrapTokenSecretKey]) {
				return fmt.Errorf("a different token with ID %q exists", tok.ID)
			}
		}
		stored = out
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create the bootstrap token %q that owns %s/%s: %w", tok.ID, metav1.NamespaceSystem, SecretName, err)
	}
	return stored, nil
}

// Download reads kube-system/kubeadm-certs, decrypts it with the certificate key and writes the shared files
// under certDir (and, with external etcd, to the configured paths): keys 0600, certificates 0644. Everything is
// decrypted and checked before the first file is written, so a wrong key, a missing or incomplete Secret or a
// CA whose key does not match leaves the node untouched. Empty values (files the uploader did not have) are
// not written. API errors are retried until ctx ends.
func Download(ctx context.Context, client kubernetes.Interface, fsys nodefs.FS, certDir, key string, external *config.ExternalEtcd) error {
	k, err := ParseKey(key)
	if err != nil {
		return err
	}
	var secret *corev1.Secret
	err = apply.Retry(ctx, func(ctx context.Context) error {
		var err error
		secret, err = client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, SecretName, metav1.GetOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("Secret %s/%w: it expires 2h after upload; %s", metav1.NamespaceSystem, ErrSecretNotFound, reuploadHint)
	}
	if err != nil {
		return fmt.Errorf("read Secret %s/%s: %w", metav1.NamespaceSystem, SecretName, err)
	}

	files := Files(certDir, external)
	plain := make(map[string][]byte, len(files))
	for _, f := range files {
		sealed, ok := secret.Data[f.SecretKey]
		if !ok {
			what := "stacked etcd"
			if external != nil {
				what = "external etcd"
			}
			return fmt.Errorf("Secret %s/%s has no key %q, which a cluster with %s needs: it was uploaded for a different etcd setup; %s",
				metav1.NamespaceSystem, SecretName, f.SecretKey, what, reuploadHint)
		}
		if len(sealed) == 0 {
			continue
		}
		if f.Path == "" {
			return fmt.Errorf("Secret %s/%s carries %q but etcd.external names no file for it; set the file in the ClusterConfiguration",
				metav1.NamespaceSystem, SecretName, f.SecretKey)
		}
		p, err := Decrypt(sealed, k)
		if errors.Is(err, ErrWrongKey) {
			return fmt.Errorf("%w: use the key printed by init --upload-certs, or %s", ErrWrongKey, reuploadHint)
		}
		if err != nil {
			return fmt.Errorf("Secret %s/%s key %q: %w; %s", metav1.NamespaceSystem, SecretName, f.SecretKey, err, reuploadHint)
		}
		if err := checkPEM(f, p); err != nil {
			return fmt.Errorf("Secret %s/%s key %q: %w; %s", metav1.NamespaceSystem, SecretName, f.SecretKey, err, reuploadHint)
		}
		plain[f.SecretKey] = p
	}
	if err := checkPairs(plain); err != nil {
		return fmt.Errorf("Secret %s/%s: %w; %s", metav1.NamespaceSystem, SecretName, err, reuploadHint)
	}
	return write(fsys, certDir, files, plain, external == nil)
}

// Install writes shared files a control-plane node gets from elsewhere (an etcd snapshot archive), keyed as in
// the Secret (File.SecretKey), to their places under certDir: each is checked to be what its file must hold and
// each CA's certificate to match its key before anything is written.
func Install(fsys nodefs.FS, certDir string, external *config.ExternalEtcd, plain map[string][]byte) error {
	files := Files(certDir, external)
	for _, f := range files {
		p, ok := plain[f.SecretKey]
		if !ok {
			continue
		}
		if err := checkPEM(f, p); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	if err := checkPairs(plain); err != nil {
		return err
	}
	return write(fsys, certDir, files, plain, external == nil)
}

// write puts the checked files in place: certificates pki.CertMode, keys pki.KeyMode, in directories pki.DirMode.
func write(fsys nodefs.FS, certDir string, files []File, plain map[string][]byte, stackedEtcd bool) error {
	if err := pki.EnsureDirs(fsys, certDir, stackedEtcd); err != nil {
		return err
	}
	for _, f := range files {
		p, ok := plain[f.SecretKey]
		if !ok {
			continue
		}
		mode := pki.CertMode
		if f.Private {
			mode = pki.KeyMode
		}
		// WriteFile sets the mode on a fresh temporary file before the data goes in, so a key is never
		// readable by others, not even for a moment, and an existing file's looser mode is not kept.
		if err := fsys.WriteFile(f.Path, p, mode); err != nil {
			return err
		}
	}
	return nil
}

// checkPEM makes sure a decrypted value is what its file must hold.
func checkPEM(f File, data []byte) error {
	switch {
	case f.Private:
		if _, err := keyutil.ParsePrivateKeyPEM(data); err != nil {
			return fmt.Errorf("not a PEM private key: %w", err)
		}
	case f.SecretKey == pki.ServiceAccountPubName:
		if _, err := keyutil.ParsePublicKeysPEM(data); err != nil {
			return fmt.Errorf("not a PEM public key: %w", err)
		}
	default:
		if _, err := certutil.ParseCertsPEM(data); err != nil {
			return fmt.Errorf("not a PEM certificate: %w", err)
		}
	}
	return nil
}

// checkPairs refuses a CA whose certificate and key do not belong together, which would break every certificate
// the new node issues.
func checkPairs(plain map[string][]byte) error {
	for _, base := range []string{"ca", "front-proxy-ca", "etcd-ca"} {
		crt, key := plain[base+".crt"], plain[base+".key"]
		if crt == nil || key == nil {
			continue
		}
		if _, err := pki.ParseCA(crt, key); err != nil {
			return fmt.Errorf("%s.crt and %s.key: %w", base, base, err)
		}
	}
	return nil
}
