package cli

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/kubelet"
)

func TestCertsAutoRenewInstallWithoutSystemd(t *testing.T) {
	root := t.TempDir()
	deps := autoRenewDeps{
		binary:     func() (string, error) { return "/usr/local/bin/kubeboot", nil },
		hostname:   func() (string, error) { return "cp-1", nil },
		initSystem: kubelet.DetectInitSystem, // no /run/systemd/system under root
	}
	var out bytes.Buffer
	cmd := &cobra.Command{Use: "kubeboot", SilenceUsage: true, SilenceErrors: true}
	addGlobalFlags(cmd)
	cmd.AddCommand(newCertsAutoRenewCmd(&out, deps))
	cmd.SetArgs([]string{"auto-renew", "install", "--if-expires-within", "240h", "--rootfs", root})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := `[auto-renew] This node does not run systemd (init system: none). Add this line to root's crontab (crontab -e as root),
so that the certificates that expire within 240h are renewed every day:

12 5 * * * /usr/local/bin/kubeboot certs renew all --if-expires-within 240h --restart >>/var/log/kubeboot-certs-renew.log 2>&1
`
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("wrote %v under the root", entries)
	}
}
