package cluster

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"kubeboot.dev/kubeboot/lab/node"
)

// PrintStatus writes one line per node: its address, pod subnet, whether it is up (its supervisor runs) and
// whether its init process, containerd and kubelet are running; then the load balancer, if there is one.
func PrintStatus(w io.Writer, st *State) error {
	fmt.Fprintf(w, "lab: %s, bridge %s %s, pods %s, services %s, state %s\n",
		st.Phase, st.Bridge, st.Gateway, st.PodCIDR, st.ServiceCIDR, StateFile(st.StateDir))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tIP\tPOD SUBNET\tBOOTSTRAPPER\tSTATE\tNODE-RUN\tCONTAINERD\tKUBELET")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, n.IP, n.PodSubnet, n.Bootstrapper, upOrDown(n),
			pidStatus(n.PID, n.MntNS), pidStatus(readPID(n.PIDFile("containerd")), n.MntNS), pidStatus(readPID(n.PIDFile("kubelet")), n.MntNS))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lb := st.LoadBalancer
	if lb == nil || lb.LoadBalancer == nil {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOAD BALANCER\tENDPOINT\tSTATE\tNODE-RUN\tKUBEBOOT LOADBALANCER\tBACKENDS (as its log last said)")
	backends := backendStates(filepath.Join(lb.LogDir(), "loadbalancer.log"))
	var bs []string
	for _, b := range lb.LoadBalancer.Backends {
		state := backends[b]
		if state == "" {
			state = "unknown"
		}
		bs = append(bs, b+" "+state)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", lb.Name, lb.LoadBalancer.Listen, upOrDown(*lb), pidStatus(lb.PID, lb.MntNS),
		pidStatus(readPID(lb.PIDFile("loadbalancer")), lb.MntNS), strings.Join(bs, ", "))
	return tw.Flush()
}

func upOrDown(n NodeState) string {
	if Running(n) {
		return "up"
	}
	return "down"
}

// backendStates reads kubeboot loadbalancer's log for the last word on each backend: its lines
// "backend ADDR is up" and "backend ADDR is down: why".
func backendStates(logPath string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(logPath)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "backend ")
		if !ok {
			continue
		}
		addr, state, ok := strings.Cut(rest, " is ")
		if !ok {
			continue
		}
		if strings.HasPrefix(state, "down") {
			out[addr] = "down"
		} else if state == "up" {
			out[addr] = "up"
		}
	}
	return out
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// pidStatus says whether pid runs in the node's mount namespace mntNS: a PID file a killed node left behind
// may name a PID since reused by some other process.
func pidStatus(pid int, mntNS uint64) string {
	if pid == 0 {
		return "-"
	}
	if node.Alive(pid) {
		if ino, err := node.NSInode(pid, "mnt"); err == nil && ino == mntNS {
			return "running (" + strconv.Itoa(pid) + ")"
		}
	}
	return "dead (" + strconv.Itoa(pid) + ")"
}
