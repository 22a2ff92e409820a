package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kubeboot.dev/kubeboot/internal/hint"
)

// TurnLease is the Lease in kube-system that a control-plane node holds while it adds its etcd member, from the
// learner's addition to its promotion. etcd takes one learner at a time (--max-learners 1, kubeadm's default):
// control-plane joins started at once take turns here instead of failing on etcd's "too many learners".
const TurnLease = "kubeboot-etcd-member-change"

// LearnerAnnotation on TurnLease is the peer URL of the learner its holder added; a holder that died leaves it, and
// the next one removes that learner if it was never promoted.
const LearnerAnnotation = "kubeboot.dev/etcd-learner-peer-url"

// Defaults of TurnOptions.
const (
	DefaultTurnLease = 30 * time.Second
	DefaultTurnWait  = 5 * time.Minute
)

// TurnOptions configure TakeTurn.
type TurnOptions struct {
	Client kubernetes.Interface
	// Holder names this node in the Lease (its Node name).
	Holder string
	// Lease is how long the turn outlives its holder's last renewal; the holder renews it every third of that.
	// 0: DefaultTurnLease.
	Lease time.Duration
	// Wait bounds the wait for the turn; 0: DefaultTurnWait.
	Wait time.Duration
	// Interval between attempts while another node holds the turn; 0: one second.
	Interval time.Duration
	// Out gets a line whenever the turn is seen held by another node.
	Out io.Writer
	Now func() time.Time
}

// Turn is a held turn; Release gives it back.
type Turn struct {
	opts TurnOptions
	// Stale is the peer URL of a learner that an earlier holder added and whose turn ran out before it gave it
	// back: a join killed between adding its learner and promoting it. "" when there is none.
	Stale string

	mu    sync.Mutex
	lease *coordinationv1.Lease
	lost  error
	stop  chan struct{}
	done  chan struct{}
}

// TakeTurn waits until no other node holds TurnLease (or its holder's lease ran out), takes it, and renews it in
// the background until Release.
func TakeTurn(ctx context.Context, opts TurnOptions) (*Turn, error) {
	if opts.Lease == 0 {
		opts.Lease = DefaultTurnLease
	}
	if opts.Wait == 0 {
		opts.Wait = DefaultTurnWait
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	t := &Turn{opts: opts}
	deadline := opts.Now().Add(opts.Wait)
	lastSeen := ""
	for {
		held, err := t.try(ctx)
		if err != nil {
			return nil, err
		}
		if held == "" {
			break
		}
		if held != lastSeen {
			fmt.Fprintf(opts.Out, "  waiting for the turn to add an etcd member: %s holds the Lease kube-system/%s\n", held, TurnLease)
			lastSeen = held
		}
		if opts.Now().After(deadline) {
			return nil, hint.With(fmt.Errorf("waited %s for the turn to add an etcd member: %s still holds the Lease kube-system/%s", opts.Wait, held, TurnLease),
				"another control plane is joining; when it is done run join again, or, if it is gone, delete the Lease (it also runs out "+opts.Lease.String()+" after its holder stops renewing it)")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(opts.Interval):
		}
	}
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go t.renew()
	return t, nil
}

// try takes the Lease when it is free, expired or already ours, and returns "" then; otherwise who holds it.
func (t *Turn) try(ctx context.Context) (string, error) {
	leases := t.opts.Client.CoordinationV1().Leases(metav1.NamespaceSystem)
	now := metav1.NewMicroTime(t.opts.Now())
	seconds := int32(t.opts.Lease / time.Second)
	l, err := leases.Get(ctx, TurnLease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: TurnLease, Namespace: metav1.NamespaceSystem},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &t.opts.Holder, LeaseDurationSeconds: &seconds, AcquireTime: &now, RenewTime: &now},
		}
		created, err := leases.Create(ctx, l, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return "another node (it took the Lease just now)", nil
		}
		if err != nil {
			return "", fmt.Errorf("take the turn to add an etcd member: create Lease kube-system/%s: %w", TurnLease, err)
		}
		t.lease = created
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("take the turn to add an etcd member: read Lease kube-system/%s: %w", TurnLease, err)
	}
	holder := ""
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if holder != "" && holder != t.opts.Holder && !expired(l, t.opts.Now()) {
		return holder, nil
	}
	if holder != "" && holder != t.opts.Holder {
		t.Stale = l.Annotations[LearnerAnnotation]
	}
	l = l.DeepCopy()
	delete(l.Annotations, LearnerAnnotation)
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &t.opts.Holder, &seconds, &now, &now
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		t.Stale = ""
		return "another node (it took the Lease just now)", nil
	}
	if err != nil {
		return "", fmt.Errorf("take the turn to add an etcd member: update Lease kube-system/%s: %w", TurnLease, err)
	}
	t.lease = updated
	return "", nil
}

func expired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return now.After(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// Record notes the peer URL of the learner this holder added on the Lease, so that the next holder can remove
// it should this one die before promoting it.
func (t *Turn) Record(ctx context.Context, peerURL string) error {
	return t.update(ctx, func(l *coordinationv1.Lease) {
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[LearnerAnnotation] = peerURL
	})
}

// Lost is why the turn was lost (its renewal failed until the Lease ran out); nil while it is held.
func (t *Turn) Lost() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

func (t *Turn) renew() {
	defer close(t.done)
	tick := time.NewTicker(t.opts.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), t.opts.Lease/3)
		err := t.update(ctx, func(*coordinationv1.Lease) {})
		cancel()
		t.mu.Lock()
		if err != nil && t.lease.Spec.RenewTime != nil && t.opts.Now().After(t.lease.Spec.RenewTime.Add(t.opts.Lease)) {
			t.lost = fmt.Errorf("the turn to add an etcd member ran out: Lease kube-system/%s was not renewed for %s: %w", TurnLease, t.opts.Lease, err)
		}
		t.mu.Unlock()
	}
}

// update renews the Lease with change applied, as long as this node still holds it. An update that the API
// server applied but whose answer was lost (its context ended first) leaves this copy one version behind: on a
// conflict the Lease is read again, and the change applied to it if this node is still its holder.
func (t *Turn) update(ctx context.Context, change func(*coordinationv1.Lease)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	leases := t.opts.Client.CoordinationV1().Leases(metav1.NamespaceSystem)
	for reread := false; ; reread = true {
		l := t.lease.DeepCopy()
		change(l)
		now := metav1.NewMicroTime(t.opts.Now())
		l.Spec.RenewTime = &now
		updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
		if err == nil {
			t.lease = updated
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		current, gerr := leases.Get(ctx, TurnLease, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("the Lease kube-system/%s changed under its holder %s, and reading it again failed: %w", TurnLease, t.opts.Holder, gerr)
		}
		if holder := current.Spec.HolderIdentity; reread || holder == nil || *holder != t.opts.Holder {
			return fmt.Errorf("the Lease kube-system/%s changed under its holder %s (it names %q now): %w", TurnLease, t.opts.Holder, ptr.Deref(holder, ""), err)
		}
		t.lease = current
	}
}

// Release gives the turn back: the Lease stays, with no holder.
func (t *Turn) Release(ctx context.Context) error {
	close(t.stop)
	<-t.done
	err := t.update(ctx, func(l *coordinationv1.Lease) {
		delete(l.Annotations, LearnerAnnotation)
		l.Spec.HolderIdentity = nil
	})
	if err != nil {
		return errors.Join(fmt.Errorf("give back the turn to add an etcd member (it runs out by itself in %s)", t.opts.Lease), err)
	}
	return nil
}
