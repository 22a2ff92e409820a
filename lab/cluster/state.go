// Package cluster brings a multi-node lab cluster up on this machine and takes it down again
// leaving nothing behind: it owns the lab's state file and the order of every step.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"kubeboot.dev/kubeboot/lab/node"
)

// DefaultStateDir is shared with lab/build: binaries and images live next to the nodes.
const DefaultStateDir = "/var/lib/kubeboot-lab"

// State is everything `lab down` needs to undo `lab up`, saved as `lab up` goes. Down also finds
// the lab's netns, links and cgroups by their names, so a `lab up` that died between a step and
// its Save leaves nothing Down cannot remove.
type State struct {
	StateDir          string `json:"stateDir"`
	BinDir            string `json:"binDir"`
	Bridge            string `json:"bridge"`
	Subnet            string `json:"subnet"`  // the lab segment, e.g. 10.77.0.0/24
	Gateway           string `json:"gateway"` // the bridge's address, e.g. 10.77.0.1
	PodCIDR           string `json:"podCIDR"`
	ServiceCIDR       string `json:"serviceCIDR"`
	KubernetesVersion string `json:"kubernetesVersion"`
	Phase             string `json:"phase"` // "starting" until every node is Ready, then "up"

	Nodes []NodeState `json:"nodes"`
	// LoadBalancer is the control-plane endpoint of a lab with more than one control plane.
	LoadBalancer *NodeState `json:"loadBalancer,omitempty"`

	// CreatedPaths are mount points the lab had to create on the machine (parents first).
	CreatedPaths []string `json:"createdPaths"`
	// RunNetns records what /run/netns was before the first `ip netns add`, which makes it a mount.
	RunNetnsExisted bool `json:"runNetnsExisted"`
	RunNetnsMounted bool `json:"runNetnsMounted"`
}

// NodeState is one node's spec and what was started for it.
type NodeState struct {
	node.Spec
	Bootstrapper string `json:"bootstrapper"`
	PID          int    `json:"pid"`   // node-run
	MntNS        uint64 `json:"mntNS"` // its mount namespace
	NetNS        uint64 `json:"netNS"` // its network namespace
}

// StateFile is where State is kept.
func StateFile(stateDir string) string { return filepath.Join(stateDir, "lab.json") }

// NodesDir holds one directory per node.
func NodesDir(stateDir string) string { return filepath.Join(stateDir, "nodes") }

// ErrNoLab is returned by LoadState when no lab is up.
var ErrNoLab = errors.New("no lab is up")

// LoadState reads the state of the lab in stateDir.
func LoadState(stateDir string) (*State, error) {
	b, err := os.ReadFile(StateFile(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (no %s): start one with `lab up`", ErrNoLab, StateFile(stateDir))
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("lab state %s is corrupt (%w): run `lab down` to clean up", StateFile(stateDir), err)
	}
	return &s, nil
}

// Save writes the state atomically.
func (s *State) Save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	tmp := StateFile(s.StateDir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	if err := os.Rename(tmp, StateFile(s.StateDir)); err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	return nil
}

// FirstControlPlane is the node whose admin.conf the lab's kubectl uses.
func (s *State) FirstControlPlane() (NodeState, error) {
	for _, n := range s.Nodes {
		if n.Role == node.ControlPlane {
			return n, nil
		}
	}
	return NodeState{}, errors.New("the lab has no control-plane node")
}

// Node finds a node, or the load balancer, by its full name (kblab-w1) or short name (w1).
func (s *State) Node(name string) (NodeState, error) {
	n, err := s.nodeRef(name)
	if err != nil {
		return NodeState{}, err
	}
	return *n, nil
}

// machines are the lab's namespaces with a supervisor: the nodes and the load balancer.
func (s *State) machines() []*NodeState {
	var out []*NodeState
	for i := range s.Nodes {
		out = append(out, &s.Nodes[i])
	}
	if s.LoadBalancer != nil {
		out = append(out, s.LoadBalancer)
	}
	return out
}

func (s *State) nodeRef(name string) (*NodeState, error) {
	var names []string
	for _, n := range s.machines() {
		if n.Name == name || n.Name == node.Prefix+name {
			return n, nil
		}
		names = append(names, n.Name)
	}
	return nil, fmt.Errorf("no lab node %q; nodes: %v", name, names)
}
