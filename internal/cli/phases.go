package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/workflow"
)

// phaseCommands builds `<workflow> phase <name> [<sub>|all]` from a phase tree, as kubeadm does. command makes the
// cobra command that runs the phase path (with its own flags).
func phaseCommands[D any](workflowName string, phases []workflow.Phase[D], command func(use, short, path string) *cobra.Command) *cobra.Command {
	phaseCmd := &cobra.Command{Use: "phase", Short: "Run one phase of " + workflowName}
	var add func(parent *cobra.Command, prefix string, ps []workflow.Phase[D])
	add = func(parent *cobra.Command, prefix string, ps []workflow.Phase[D]) {
		for _, p := range ps {
			if p.Hidden {
				continue
			}
			path := p.Name
			if prefix != "" {
				path = prefix + "/" + p.Name
			}
			c := command(p.Name, p.Short, path)
			if len(p.Phases) > 0 {
				c.AddCommand(command("all", "Run every "+p.Name+" phase", path))
				add(c, path, p.Phases)
			}
			parent.AddCommand(c)
		}
	}
	add(phaseCmd, "", phases)
	return phaseCmd
}

// phaseList is the indented list of visible phases for a command's help.
func phaseList[D any](phases []workflow.Phase[D]) string {
	var b strings.Builder
	var walk func(indent string, ps []workflow.Phase[D])
	walk = func(indent string, ps []workflow.Phase[D]) {
		for _, p := range ps {
			if p.Hidden {
				continue
			}
			fmt.Fprintf(&b, "%s%-22s %s\n", indent, p.Name, p.Short)
			walk(indent+"  ", p.Phases)
		}
	}
	walk("  ", phases)
	return b.String()
}
