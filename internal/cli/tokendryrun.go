package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"
)

// dryRunClient is kubeadm's token --dry-run: reads go to the cluster through real (bounded by ctx), and every
// write is printed to out instead of made. The printed objects are what would be sent, the token Secret included,
// as kubeadm prints it: the command prints the token itself anyway.
func dryRunClient(ctx context.Context, real kubernetes.Interface, out io.Writer) kubernetes.Interface {
	c := fake.NewClientset()
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		res, ns := a.GetResource().Resource, a.GetNamespace()
		switch a.GetVerb() {
		case "get":
			name := a.(k8stesting.GetAction).GetName()
			switch res {
			case "secrets":
				s, err := real.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
				return true, s, err
			case "configmaps":
				cm, err := real.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
				return true, cm, err
			}
		case "list":
			if res == "secrets" {
				fields := a.(k8stesting.ListAction).GetListRestrictions().Fields.String()
				l, err := real.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: fields})
				return true, l, err
			}
		case "create":
			obj := a.(k8stesting.CreateAction).GetObject()
			b, err := yaml.Marshal(obj)
			if err != nil {
				return true, nil, err
			}
			fmt.Fprintf(out, "[dryrun] Would create %s in namespace %s:\n%s", res, ns, indent(b))
			return true, obj, nil
		case "delete":
			fmt.Fprintf(out, "[dryrun] Would delete %s %s/%s\n", res, ns, a.(k8stesting.DeleteAction).GetName())
			return true, nil, nil
		}
		return true, nil, fmt.Errorf("dry run: %s %s is not supported", a.GetVerb(), res)
	})
	return c
}

func indent(b []byte) string {
	return "\t" + strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n\t") + "\n"
}
