package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// SetUpgradeDefaults fills the unset fields of an UpgradeConfiguration as kubeadm's v1beta4 defaulting does.
func SetUpgradeDefaults(u *UpgradeConfiguration) {
	u.TypeMeta = typeMeta(KindUpgrade)
	for _, b := range []**bool{&u.Node.EtcdUpgrade, &u.Node.CertificateRenewal, &u.Node.ImagePullSerial,
		&u.Apply.EtcdUpgrade, &u.Apply.CertificateRenewal, &u.Apply.ImagePullSerial, &u.Plan.EtcdUpgrade} {
		if *b == nil {
			*b = ptr.To(true)
		}
	}
	if u.Node.ImagePullPolicy == "" {
		u.Node.ImagePullPolicy = DefaultImagePullPolicy
	}
	if u.Apply.ImagePullPolicy == "" {
		u.Apply.ImagePullPolicy = DefaultImagePullPolicy
	}
	if u.Timeouts == nil {
		u.Timeouts = &Timeouts{}
	}
	setTimeoutDefaults(u.Timeouts)
}

// DefaultUpgradeDocuments prints what `kubeboot config print upgrade-defaults` shows.
func DefaultUpgradeDocuments() ([]byte, error) {
	u := &UpgradeConfiguration{}
	SetUpgradeDefaults(u)
	return marshalDocuments(u)
}

// ValidateUpgrade checks an UpgradeConfiguration as far as kubeboot reads it.
func ValidateUpgrade(u *UpgradeConfiguration) error {
	if err := validateTimeouts(u.Timeouts, field.NewPath("timeouts")).ToAggregate(); err != nil {
		return fmt.Errorf("%s: %w", KindUpgrade, err)
	}
	return nil
}

// Resolved is every kubeadm document of one file, loaded, defaulted and validated as the command that reads it
// would: Init is set when the file holds an InitConfiguration or a ClusterConfiguration, and so on.
type Resolved struct {
	Init    *Init
	Join    *Join
	Reset   *ResetConfiguration
	Upgrade *UpgradeConfiguration
	// Kubeboot is the KubebootConfiguration, defaulted, and validated with init's or join's document when the
	// file has one (the same settings then come in Init or Join too).
	Kubeboot *KubebootConfiguration
	// Warnings are problems that do not stop kubeboot, such as the deprecated v1beta3.
	Warnings []string
	// Deprecated says a document used the deprecated kubeadm.k8s.io/v1beta3.
	Deprecated bool
}

// ResolveFile loads every document of a configuration file and runs each kind through the pipeline of the command
// that reads it (init, join, reset, upgrade): what `config validate` checks and `config migrate` writes.
func ResolveFile(data []byte, env Environment) (*Resolved, error) {
	docs, err := Load(data)
	if err != nil {
		return nil, err
	}
	r := &Resolved{Warnings: docs.Warnings, Deprecated: len(docs.Warnings) > 0}
	if docs.Init == nil && docs.Cluster == nil && docs.Join == nil && docs.Reset == nil && docs.Upgrade == nil {
		return nil, fmt.Errorf("no kubeadm configuration found: the file needs one of %s, %s, %s, %s or %s",
			KindInit, KindCluster, KindJoin, KindReset, KindUpgrade)
	}
	var errs []error
	if docs.Init != nil || docs.Cluster != nil {
		cfg, _ := docs.ForInit()
		if err := SetInitDefaults(cfg, env); err != nil {
			errs = append(errs, err)
		} else if err := ValidateInit(cfg); err != nil {
			errs = append(errs, err)
		}
		r.Init = cfg
	}
	if docs.Join != nil {
		cfg, _ := docs.ForJoin()
		if err := SetJoinDefaults(cfg, env); err != nil {
			errs = append(errs, err)
		} else if err := ValidateJoin(cfg); err != nil {
			errs = append(errs, err)
		}
		r.Join = cfg
	}
	if docs.Reset != nil {
		cfg := *docs.Reset
		SetResetDefaults(&cfg)
		errs = append(errs, ValidateReset(&cfg))
		r.Reset = &cfg
	}
	if docs.Upgrade != nil {
		cfg := *docs.Upgrade
		SetUpgradeDefaults(&cfg)
		errs = append(errs, ValidateUpgrade(&cfg))
		r.Upgrade = &cfg
	}
	if docs.Kubeboot != nil {
		r.Kubeboot = docs.Kubeboot.clone()
		SetKubebootDefaults(r.Kubeboot)
		if docs.Init == nil && docs.Cluster == nil && docs.Join == nil {
			errs = append(errs, ValidateKubeboot(r.Kubeboot, 0))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Migrate is kubeadm's `config migrate`: it reads a file of kubeadm.k8s.io/v1beta3 or v1beta4 documents and writes
// what kubeboot would use, defaulted and validated, as kubeadm.k8s.io/v1beta4: InitConfiguration and
// ClusterConfiguration, then JoinConfiguration, ResetConfiguration, UpgradeConfiguration and kubeboot's own
// KubebootConfiguration, each only when the file has it. KubeletConfiguration and KubeProxyConfiguration
// documents are left out, as kubeadm leaves them out.
// Defaulting fills in a bootstrap token, so the output is a secret when the file has an InitConfiguration.
func Migrate(data []byte, env Environment) ([]byte, error) {
	r, err := ResolveFile(data, env)
	if err != nil {
		return nil, err
	}
	var parts [][]byte
	if r.Init != nil {
		b, err := MarshalInit(&Init{Init: r.Init.Init, Cluster: r.Init.Cluster})
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	if r.Join != nil {
		b, err := MarshalJoinConfiguration(&r.Join.Join)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	if r.Reset != nil {
		b, err := marshalDocuments(r.Reset)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	if r.Upgrade != nil {
		b, err := marshalDocuments(r.Upgrade)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	if r.Kubeboot != nil {
		b, err := MarshalKubebootConfiguration(r.Kubeboot)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	return bytes.Join(parts, []byte(documentSeparator)), nil
}

// DeprecatedAPIError is returned by `config validate` for a v1beta3 document without --allow-deprecated-api.
func DeprecatedAPIError(warnings []string) error {
	return fmt.Errorf("the file uses the deprecated %s (%s); convert it with `kubeboot config migrate`, or pass "+
		"--allow-deprecated-api to validate it anyway", V1beta3, strings.Join(warnings, "; "))
}
