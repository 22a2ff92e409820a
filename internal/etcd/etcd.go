// Package etcd manages the membership of the cluster's stacked etcd: listing members and their status, adding
// a joining control-plane node as a learner and promoting it once it has caught up, and removing a node's
// member at reset. Every change is checked against quorum first: a cluster that loses quorum loses the API.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// LocalEndpoint is where every stacked member listens besides its advertise address.
var LocalEndpoint = staticpod.EtcdClientURL("127.0.0.1")

// Timing. A single request is short so that a member that is down costs little; operations that wait for the
// cluster (a learner catching up, a leader election) retry until Options.CallTimeout.
const (
	requestTimeout = 5 * time.Second
	statusTimeout  = 2 * time.Second
	retryInterval  = 500 * time.Millisecond
	// promoteInterval is short: a learner usually catches up within a few hundred milliseconds.
	promoteInterval = 100 * time.Millisecond
)

// Errors; check with errors.Is.
var (
	// ErrUnhealthy is wrapped when a change is refused because members are down.
	ErrUnhealthy = errors.New("etcd cluster is not healthy enough")
	// ErrMemberNotFound is wrapped when an ID names no member.
	ErrMemberNotFound = errors.New("no such etcd member")
)

// ClientTLS is the TLS configuration to reach the cluster's etcd from a control-plane node: the etcd CA
// (etcd/ca.crt) and a client certificate kubeadm issues, etcd/healthcheck-client, or apiserver-etcd-client when
// the former is absent. certDir is the node path of the certificates directory.
func ClientTLS(fsys nodefs.FS, certDir string) (*tls.Config, error) {
	caPath := certDir + "/etcd/ca.crt"
	caPEM, err := fsys.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("read the etcd CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caPath)
	}
	var tried []string
	for _, base := range []string{"etcd/healthcheck-client", "apiserver-etcd-client"} {
		crt, key := certDir+"/"+base+".crt", certDir+"/"+base+".key"
		tried = append(tried, crt)
		if !fsys.Exists(crt) {
			continue
		}
		// Through fsys, not by path: the pair may be held in memory (nodefs.Memory).
		crtPEM, err := fsys.ReadFile(crt)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate %s: %w", crt, err)
		}
		keyPEM, err := fsys.ReadFile(key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate %s: %w", crt, err)
		}
		pair, err := tls.X509KeyPair(crtPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate %s: %w", crt, err)
		}
		return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
	}
	return nil, fmt.Errorf("no etcd client certificate: none of %s exists; this node is not a control-plane node with stacked etcd, or run `kubeboot init phase certs etcd-healthcheck-client`",
		strings.Join(tried, ", "))
}

// Options configure a Client.
type Options struct {
	// Endpoints are client URLs of members; LocalEndpoint when empty.
	Endpoints []string
	TLS       *tls.Config
	// CallTimeout bounds the operations that wait for the cluster: AddLearner, Promote, Remove
	// (timeouts.etcdAPICall; 2m when zero).
	CallTimeout time.Duration
	// AddHealthWait is how long AddLearner waits for an unhealthy voting member to become healthy before it
	// refuses the add (DefaultAddHealthWait when zero, never more than CallTimeout).
	AddHealthWait time.Duration
}

// DefaultAddHealthWait: a member promoted moments ago may not answer its status while it catches up or while its
// node is busy (seen in TestHA: 34 s after a rejoin's promotion), and the next add should wait for it rather
// than fail; a member that is really down is named once the wait ends.
const DefaultAddHealthWait = time.Minute

// WithClientTLS returns o authenticated with the etcd client certificate of certDir on fsys (ClientTLS), for a
// caller that hands the options to a connect function of its own (join's, which its tests replace).
func (o Options) WithClientTLS(fsys nodefs.FS, certDir string) (Options, error) {
	tlsConfig, err := ClientTLS(fsys, certDir)
	if err != nil {
		return o, err
	}
	o.TLS = tlsConfig
	return o, nil
}

// Connect reaches the cluster's etcd the way a control-plane node does: at opts.Endpoints, with the etcd client
// certificate of certDir on fsys (WithClientTLS). Like New, it does not dial until the first call.
func Connect(fsys nodefs.FS, certDir string, opts Options) (*Client, error) {
	opts, err := opts.WithClientTLS(fsys, certDir)
	if err != nil {
		return nil, err
	}
	return New(opts)
}

// Client talks to one etcd cluster.
type Client struct {
	cli           *clientv3.Client
	tls           *tls.Config // nil: plain TCP
	callTimeout   time.Duration
	addHealthWait time.Duration
}

// New makes a client; it does not connect until the first call.
func New(opts Options) (*Client, error) {
	eps := opts.Endpoints
	if len(eps) == 0 {
		eps = []string{LocalEndpoint}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		TLS:         opts.TLS,
		DialTimeout: 2 * time.Second,
		// The client logs every retry; our errors say what matters.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(eps, ","), err)
	}
	c := &Client{cli: cli, tls: opts.TLS, callTimeout: opts.CallTimeout}
	if c.callTimeout == 0 {
		c.callTimeout = config.DefaultEtcdAPICall
	}
	c.addHealthWait = opts.AddHealthWait
	if c.addHealthWait == 0 {
		c.addHealthWait = DefaultAddHealthWait
	}
	c.addHealthWait = min(c.addHealthWait, c.callTimeout)
	return c, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.cli.Close() }

// Endpoints are the client URLs the client uses.
func (c *Client) Endpoints() []string { return c.cli.Endpoints() }

// Member is one etcd member.
type Member struct {
	ID         uint64
	Name       string // empty until the member has started
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

// IDString is the ID as etcd prints it: hexadecimal.
func (m Member) IDString() string { return strconv.FormatUint(m.ID, 16) }

// Started reports whether the member has ever run: etcd learns a member's name and client URLs from the
// member itself.
func (m Member) Started() bool { return m.Name != "" }

// PeerURL is the member's first peer URL.
func (m Member) PeerURL() string {
	if len(m.PeerURLs) == 0 {
		return ""
	}
	return m.PeerURLs[0]
}

// describe names a member for messages.
func (m Member) describe() string {
	name := m.Name
	if name == "" {
		name = "(not started)"
	}
	return fmt.Sprintf("%s (ID %s, peer %s)", name, m.IDString(), m.PeerURL())
}

func fromPB(pb []*etcdserverpb.Member) []Member {
	out := make([]Member, 0, len(pb))
	for _, m := range pb {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: slices.Clone(m.PeerURLs), ClientURLs: slices.Clone(m.ClientURLs), IsLearner: m.IsLearner})
	}
	return out
}

// HandOffLeadership makes another healthy voting member the leader when the member serving endpoint leads, and
// returns that member's name ("" when nothing was moved: the member does not lead, or no other member could take
// over). A leader that stops takes the cluster's leadership with it until an election times out, and requests in
// flight then fail ("etcdserver: request timed out", seen in TestHA while a leader restarted); a member that
// hands it over first stops as a follower. The client's endpoints must include endpoint.
func (c *Client) HandOffLeadership(ctx context.Context, endpoint string) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, statusTimeout)
	st, err := c.cli.Status(sctx, endpoint)
	cancel()
	if err != nil {
		return "", fmt.Errorf("status of the etcd member at %s: %w", endpoint, err)
	}
	if st.Header == nil || st.Leader != st.Header.MemberId {
		return "", nil
	}
	self := st.Header.MemberId
	statuses, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(statuses, func(s MemberStatus) bool { return s.ID != self && !s.IsLearner && s.Healthy })
	if i < 0 {
		return "", nil
	}
	to := statuses[i]
	mctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), c.callTimeout)
	defer cancel()
	if _, err := c.cli.MoveLeader(mctx, to.ID); err != nil {
		return "", fmt.Errorf("hand the etcd leadership to %s: %w", to.describe(), err)
	}
	return to.Name, nil
}

// MemberList lists the members (a linearizable read: it needs quorum).
func (c *Client) MemberList(ctx context.Context) ([]Member, error) {
	// The etcd client waits out its deadline on endpoints that refuse connections; say so at once instead.
	if err := probeAny(ctx, c.cli.Endpoints(), c.tls); err != nil {
		return nil, fmt.Errorf("list the etcd members: no member reachable at %s: %w", strings.Join(c.cli.Endpoints(), ","), err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the etcd members at %s: %w", strings.Join(c.cli.Endpoints(), ","), err)
	}
	return fromPB(resp.Members), nil
}

// LocalMemberList lists the members as the member asked knows them: a serializable read, answered by that member
// alone, so it works without quorum (reset asks its node's own member whether it is alone). Its error says which
// endpoints could not be reached and why, or why the member did not answer.
func (c *Client) LocalMemberList(ctx context.Context) ([]Member, error) {
	eps := c.cli.Endpoints()
	// The etcd client waits out its deadline on endpoints that refuse connections; say so at once instead.
	if err := anyOf(eps, func(ep string) error { return reach(ctx, ep, c.tls) }); err != nil {
		return nil, fmt.Errorf("etcd is not reachable at %s: %w", strings.Join(eps, ","), err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("list the etcd members at %s: %w", strings.Join(eps, ","), err)
	}
	return fromPB(resp.Members), nil
}

// MemberStatus is a member and what its endpoint says about itself.
type MemberStatus struct {
	Member
	// Endpoint is the client URL asked; empty for a member that has not started.
	Endpoint string
	// Serving: the member completes a TLS handshake on its client URL. etcd serves clients only once the member
	// has applied its own publish, which may come after the member list shows its name and client URLs.
	Serving bool
	// Healthy: the member answered, knows a leader and reports no alarm.
	Healthy bool
	// Problem says why the member is not healthy.
	Problem          string
	IsLeader         bool
	Leader           uint64 // the leader's ID as this member sees it
	RaftTerm         uint64
	RaftIndex        uint64
	RaftAppliedIndex uint64
	DBSize           int64
	Version          string
}

// Status lists the members and asks each one, concurrently, for its status.
func (c *Client) Status(ctx context.Context) ([]MemberStatus, error) {
	members, err := c.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	return c.statusOf(ctx, members), nil
}

func (c *Client) statusOf(ctx context.Context, members []Member) []MemberStatus {
	out := make([]MemberStatus, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i].Member = m
		if len(m.ClientURLs) == 0 {
			out[i].Problem = "not started: it has no client URL yet"
			continue
		}
		wg.Go(func() { c.memberStatus(ctx, &out[i]) })
	}
	wg.Wait()
	return out
}

func (c *Client) memberStatus(ctx context.Context, s *MemberStatus) {
	s.Endpoint = s.ClientURLs[0]
	// The etcd client keeps retrying a refused connection until its deadline; a member that is down is the
	// common case here, so find that out at once.
	if err := probe(ctx, s.Endpoint, c.tls); err != nil {
		s.Problem = err.Error()
		return
	}
	s.Serving = true
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := c.cli.Status(ctx, s.Endpoint)
	if err != nil {
		s.Problem = "status: " + err.Error()
		return
	}
	s.Leader, s.RaftTerm, s.RaftIndex, s.RaftAppliedIndex = resp.Leader, resp.RaftTerm, resp.RaftIndex, resp.RaftAppliedIndex
	s.DBSize, s.Version = resp.DbSize, resp.Version
	s.IsLeader = resp.Header != nil && resp.Leader != 0 && resp.Leader == resp.Header.MemberId
	switch {
	case len(resp.Errors) > 0:
		s.Problem = strings.Join(resp.Errors, "; ")
	case resp.Leader == 0:
		s.Problem = "knows no leader"
	default:
		s.Healthy = true
	}
}

// probeAny succeeds as soon as one endpoint accepts a connection (see probe); otherwise it returns the errors.
func probeAny(ctx context.Context, endpoints []string, tlsConfig *tls.Config) error {
	return anyOf(endpoints, func(ep string) error { return probe(ctx, ep, tlsConfig) })
}

// anyOf tries every endpoint at once and succeeds as soon as one try does; otherwise it returns the errors,
// sorted. The other tries are left to finish on their own (within statusTimeout): cutting their handshakes short
// would make those members log a rejected connection.
func anyOf(endpoints []string, try func(endpoint string) error) error {
	errs := make(chan error, len(endpoints))
	for _, ep := range endpoints {
		go func() { errs <- try(ep) }()
	}
	var all []string
	for range endpoints {
		err := <-errs
		if err == nil {
			return nil
		}
		all = append(all, err.Error())
	}
	slices.Sort(all)
	return errors.New(strings.Join(all, "; "))
}

// probe is reach for a member's status: a member that cannot be reached is "unreachable: <why>".
func probe(ctx context.Context, endpoint string, tlsConfig *tls.Config) error {
	host, err := clientHost(endpoint)
	if err != nil {
		return err
	}
	if err := connect(ctx, host, tlsConfig); err != nil {
		return fmt.Errorf("unreachable: %w", err)
	}
	return nil
}

// reach connects to the endpoint, completing the TLS handshake when tlsConfig is set: etcd logs a warning
// ("rejected connection on client endpoint") for every connection closed before its handshake, and a control-plane
// join asks several times a second. A listener that accepts the connection but does not complete etcd's handshake
// (not etcd, or not with this CA) is not reached either.
func reach(ctx context.Context, endpoint string, tlsConfig *tls.Config) error {
	host, err := clientHost(endpoint)
	if err != nil {
		return err
	}
	return connect(ctx, host, tlsConfig)
}

func clientHost(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("client URL %q: %w", endpoint, err)
	}
	return u.Host, nil
}

func connect(ctx context.Context, host string, tlsConfig *tls.Config) error {
	nd := &net.Dialer{Timeout: statusTimeout}
	var conn net.Conn
	var err error
	if tlsConfig != nil {
		conn, err = (&tls.Dialer{NetDialer: nd, Config: tlsConfig}).DialContext(ctx, "tcp", host)
	} else {
		conn, err = nd.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return err
	}
	return conn.Close()
}

// CheckQuorumSafeToAdd refuses to add a member unless every voting member is healthy: once the new member is
// promoted, the quorum grows, and a cluster that already has a member down may then lose it if the new member
// fails to start. The error names each member that is down.
func (c *Client) CheckQuorumSafeToAdd(ctx context.Context) error {
	members, err := c.MemberList(ctx)
	if err != nil {
		return err
	}
	return checkAdd(c.statusOf(ctx, members))
}

func checkAdd(statuses []MemberStatus) error {
	var down []string
	for _, s := range statuses {
		if !s.IsLearner && !s.Healthy {
			down = append(down, fmt.Sprintf("voting member %s is not healthy: %s", s.describe(), s.Problem))
		}
	}
	if len(down) == 0 {
		return nil
	}
	return fmt.Errorf("%w to add a member: %s; bring it back, or remove it from the cluster, before adding another",
		ErrUnhealthy, strings.Join(down, "; "))
}

// CheckQuorumSafeToRemove refuses to remove the member id unless the voting members left after it still have
// a healthy majority. Removing a learner is always safe. Removing the last voting member is refused: that
// would end the cluster (reset skips it instead). Callers that are told to force a removal skip this check.
func (c *Client) CheckQuorumSafeToRemove(ctx context.Context, id uint64) error {
	members, err := c.MemberList(ctx)
	if err != nil {
		return err
	}
	return checkRemove(c.statusOf(ctx, members), id)
}

func checkRemove(statuses []MemberStatus, id uint64) error {
	i := slices.IndexFunc(statuses, func(s MemberStatus) bool { return s.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: ID %s", ErrMemberNotFound, strconv.FormatUint(id, 16))
	}
	target := statuses[i]
	if target.IsLearner {
		return nil
	}
	voters, healthy := 0, 0
	var down []string
	for _, s := range statuses {
		if s.IsLearner || s.ID == id {
			continue
		}
		voters++
		if s.Healthy {
			healthy++
		} else {
			down = append(down, s.describe()+": "+s.Problem)
		}
	}
	if voters == 0 {
		return fmt.Errorf("%w to remove %s: it is the only voting member, and removing it ends the cluster", ErrUnhealthy, target.describe())
	}
	if need := voters/2 + 1; healthy < need {
		return fmt.Errorf("%w to remove %s: %d of the %d voting members left would be healthy, and quorum needs %d (down: %s); bring them back first",
			ErrUnhealthy, target.describe(), healthy, voters, need, strings.Join(down, "; "))
	}
	return nil
}

// AddLearner adds a non-voting member with peerURL, named name in the returned initial cluster, once every
// voting member is healthy (CheckQuorumSafeToAdd's check, tried again for up to the add health wait). It returns the member's ID and the --initial-cluster value for the new member's etcd
// ("name=peerURL,...", with initial-cluster-state=existing). A member that already has peerURL (a rerun) is
// not added again: its ID is returned. Transient errors are retried until the call timeout.
func (c *Client) AddLearner(ctx context.Context, name, peerURL string) (id uint64, initialCluster string, err error) {
	if _, err := url.Parse(peerURL); err != nil || !strings.HasPrefix(peerURL, "https://") {
		return 0, "", fmt.Errorf("peer URL %q: must be https://HOST:PORT", peerURL)
	}
	members, err := c.MemberList(ctx)
	if err != nil {
		return 0, "", err
	}
	if m, ok := findPeer(members, peerURL); ok {
		return m.ID, initialClusterOf(members, m.ID, name), nil
	}
	listed := true
	err = untilNil(ctx, c.addHealthWait, retryInterval, func(ctx context.Context) error {
		// The members may change while we wait (another add, a removal): list them again on each later try.
		if !listed {
			if list, lerr := c.MemberList(ctx); lerr == nil {
				members = list
			}
		}
		listed = false
		return checkAdd(c.statusOf(ctx, members))
	})
	if err != nil {
		return 0, "", err
	}
	if m, ok := findPeer(members, peerURL); ok {
		return m.ID, initialClusterOf(members, m.ID, name), nil
	}
	err = c.retry(ctx, retryInterval, func(ctx context.Context) error {
		resp, err := c.cli.MemberAddAsLearner(ctx, []string{peerURL})
		if errors.Is(err, rpctypes.ErrPeerURLExist) {
			// An earlier attempt that looked failed went through.
			list, lerr := c.cli.MemberList(ctx)
			if lerr != nil {
				return lerr
			}
			members = fromPB(list.Members)
			m, ok := findPeer(members, peerURL)
			if !ok {
				return err
			}
			id = m.ID
			return nil
		}
		if err != nil {
			return err
		}
		id, members = resp.Member.ID, fromPB(resp.Members)
		return nil
	})
	if errors.Is(err, rpctypes.ErrTooManyLearners) {
		return 0, "", fmt.Errorf("add etcd learner %s: %w: another member is being added; wait until it is promoted, or remove it", peerURL, err)
	}
	if err != nil {
		return 0, "", fmt.Errorf("add etcd learner %s: %w", peerURL, err)
	}
	return id, initialClusterOf(members, id, name), nil
}

func findPeer(members []Member, peerURL string) (Member, bool) {
	for _, m := range members {
		if slices.Contains(m.PeerURLs, peerURL) {
			return m, true
		}
	}
	return Member{}, false
}

// initialClusterOf renders --initial-cluster as kubeadm does: every member as name=firstPeerURL, the new member
// under the name it will start with, members without a name yet under their hexadecimal ID.
func initialClusterOf(members []Member, newID uint64, newName string) string {
	parts := make([]string, 0, len(members))
	for _, m := range members {
		name := m.Name
		switch {
		case m.ID == newID:
			name = newName
		case name == "":
			name = m.IDString()
		}
		parts = append(parts, name+"="+m.PeerURL())
	}
	return strings.Join(parts, ",")
}

// Promote makes the learner id a voting member. etcd refuses while the learner has not caught up with the
// leader (or not started), so Promote retries every 100 ms until the call timeout. A member that already votes
// is left alone.
func (c *Client) Promote(ctx context.Context, id uint64) error {
	hex := strconv.FormatUint(id, 16)
	var lastRefusal error
	err := c.retry(ctx, promoteInterval, func(ctx context.Context) error {
		_, err := c.cli.MemberPromote(ctx, id)
		switch {
		case err == nil, errors.Is(err, rpctypes.ErrMemberNotLearner):
			return nil
		case errors.Is(err, rpctypes.ErrMemberNotFound):
			return fmt.Errorf("%w: ID %s", ErrMemberNotFound, hex)
		case errors.Is(err, rpctypes.ErrMemberLearnerNotReady):
			lastRefusal = err
		}
		return err
	})
	if err != nil && lastRefusal != nil && !errors.Is(err, ErrMemberNotFound) {
		return fmt.Errorf("promote etcd member %s: it did not catch up with the leader within %s (%w): check that its etcd started and reaches the other members' peer URLs",
			hex, c.callTimeout, lastRefusal)
	}
	if err != nil {
		return fmt.Errorf("promote etcd member %s: %w", hex, err)
	}
	return nil
}

// Remove removes the member id; a member that is already gone is not an error. It does not check quorum:
// call CheckQuorumSafeToRemove first.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	err := c.retry(ctx, retryInterval, func(ctx context.Context) error {
		_, err := c.cli.MemberRemove(ctx, id)
		if errors.Is(err, rpctypes.ErrMemberNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("remove etcd member %s: %w", strconv.FormatUint(id, 16), err)
	}
	return nil
}

// MemberByPeerURL finds the member with peerURL.
func (c *Client) MemberByPeerURL(ctx context.Context, peerURL string) (Member, error) {
	members, err := c.MemberList(ctx)
	if err != nil {
		return Member{}, err
	}
	m, ok := findPeer(members, peerURL)
	if !ok {
		return Member{}, fmt.Errorf("%w with peer URL %s", ErrMemberNotFound, peerURL)
	}
	return m, nil
}

// untilNil calls check until it returns nil, every interval, for at most wait; it returns check's last error
// when the wait ends (or ctx's, when ctx ended first).
func untilNil(ctx context.Context, wait, interval time.Duration, check func(ctx context.Context) error) error {
	deadline := time.Now().Add(wait)
	for {
		err := check(ctx)
		if err == nil || !time.Now().Add(interval).Before(deadline) {
			return err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// retry runs op, each attempt bounded by requestTimeout, until it succeeds, fails for good, or the call
// timeout ends.
func (c *Client) retry(ctx context.Context, interval time.Duration, op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, requestTimeout)
		err := op(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if !transient(err) {
			return err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gave up after %s: %w", c.callTimeout, err)
		case <-t.C:
		}
	}
}

// transient reports whether an etcd error may go away by itself: a member (re)starting, an election, a
// learner catching up, a request cut short by its own timeout.
func transient(err error) bool {
	switch {
	case errors.Is(err, rpctypes.ErrMemberLearnerNotReady),
		errors.Is(err, rpctypes.ErrUnhealthy),
		errors.Is(err, rpctypes.ErrNoLeader),
		errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrNotCapable),
		errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// Snapshot streams a consistent point-in-time copy of the backend database of the member at the client's first
// endpoint to w (etcd's Maintenance.Snapshot, what `etcdctl snapshot save` saves), and returns its size and the
// etcd version the member that made it runs. The copy ends with etcd's SHA-256 trailer, which etcdutl's restore
// checks.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (size int64, version string, err error) {
	eps := c.cli.Endpoints()
	if err := reach(ctx, eps[0], c.tls); err != nil {
		return 0, "", fmt.Errorf("snapshot of the etcd member at %s: %w", eps[0], err)
	}
	// A snapshot goes to one member: the client's balancer would pick any endpoint.
	one, err := clientv3.New(clientv3.Config{Endpoints: eps[:1], TLS: c.tls, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, "", fmt.Errorf("etcd client for %s: %w", eps[0], err)
	}
	defer one.Close()
	// The snapshot stream carries the storage version, which a member writes only a while after it started; the
	// member's status says which etcd it runs.
	sctx, cancel := context.WithTimeout(ctx, statusTimeout)
	st, err := one.Status(sctx, eps[0])
	cancel()
	if err != nil {
		return 0, "", fmt.Errorf("status of the etcd member at %s: %w", eps[0], err)
	}
	resp, err := one.SnapshotWithVersion(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("snapshot of the etcd member at %s: %w", eps[0], err)
	}
	defer resp.Snapshot.Close()
	size, err = io.Copy(w, resp.Snapshot)
	if err != nil {
		return size, "", fmt.Errorf("snapshot of the etcd member at %s: %w", eps[0], err)
	}
	return size, st.Version, nil
}

// Reachable reports, for each endpoint, whether a member answers there: nil when a connection with a completed
// TLS handshake (tlsConfig's) was made, the reason otherwise. The probes run concurrently, each bounded by a
// couple of seconds. A restore asks whether members of the old cluster still run.
func Reachable(ctx context.Context, endpoints []string, tlsConfig *tls.Config) map[string]error {
	out := make(map[string]error, len(endpoints))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ep := range endpoints {
		wg.Go(func() {
			err := reach(ctx, ep, tlsConfig)
			mu.Lock()
			out[ep] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
