package cluster

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"kubeboot.dev/kubeboot/lab/node"
)

// PrintStatus writes one line per node: its address, pod subnet and whether its init process,
// containerd and kubelet are running.
func PrintStatus(w io.Writer, st *State) error {
	fmt.Fprintf(w, "lab: %s, bridge %s %s, pods %s, services %s, state %s\n",
		st.Phase, st.Bridge, st.Gateway, st.PodCIDR, st.ServiceCIDR, StateFile(st.StateDir))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tIP\tPOD SUBNET\tBOOTSTRAPPER\tNODE-RUN\tCONTAINERD\tKUBELET")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, n.IP, n.PodSubnet, n.Bootstrapper,
			pidStatus(n.PID), pidStatus(readPID(n.PIDFile("containerd"))), pidStatus(readPID(n.PIDFile("kubelet"))))
	}
	return tw.Flush()
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func pidStatus(pid int) string {
	switch {
	case pid == 0:
		return "-"
	case node.Alive(pid):
		return "running (" + strconv.Itoa(pid) + ")"
	default:
		return "dead (" + strconv.Itoa(pid) + ")"
	}
}
