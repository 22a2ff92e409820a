package cli

import (
	"testing"

	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/joinflow"
	"kubeboot.dev/kubeboot/internal/reset"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Every phase tree a command runs is well formed: a Needs path with a typo fails here, not on a node.
func TestEveryPhaseTreeIsWellFormed(t *testing.T) {
	trees := map[string]func() error{
		"init":  func() error { return workflow.Check(initflow.Phases()) },
		"join":  func() error { return workflow.Check(joinflow.Phases()) },
		"reset": func() error { return workflow.Check(reset.Phases()) },
	}
	for name, check := range trees {
		t.Run(name, func(t *testing.T) {
			if err := check(); err != nil {
				t.Error(err)
			}
		})
	}
}
