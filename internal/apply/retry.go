package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Backoff between attempts: short at first because during init the API server usually recovers within a
// fraction of a second, capped so that a long outage is still polled every second.
const (
	firstDelay = 50 * time.Millisecond
	maxDelay   = time.Second
)

// ErrNotYet marks a condition that will pass by itself soon (an object the cluster has not created yet).
// An operation passed to Retry wraps it to ask for another attempt.
var ErrNotYet = errors.New("not ready yet")

// Retry runs op until it succeeds, returns an error that is not transient (see IsTransient), or ctx ends.
// Non-transient errors are returned as they are; when ctx ends, the error wraps both ctx.Err() and the last
// error op returned.
func Retry(ctx context.Context, op func(ctx context.Context) error) error {
	delay := firstDelay
	var last error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return giveUp(ctx, attempt, last)
		}
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// The call failed because ctx ended under it; the error before it says more about why.
			if last == nil {
				last = err
			}
			return giveUp(ctx, attempt+1, last)
		}
		if !IsTransient(err) {
			return err
		}
		last = err
		// Up to 20% jitter keeps concurrent writers (Objects) from retrying in lockstep.
		wait := delay + time.Duration(rand.Int64N(int64(delay)/5+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return giveUp(ctx, attempt+1, last)
		case <-t.C:
		}
		delay = min(2*delay, maxDelay)
	}
}

func giveUp(ctx context.Context, attempts int, last error) error {
	if last == nil {
		return fmt.Errorf("gave up before the first attempt: %w", ctx.Err())
	}
	return fmt.Errorf("gave up after %d attempts: %w; last error: %w", attempts, ctx.Err(), last)
}

// IsTransient reports whether err is worth retrying: the API server is (re)starting, overloaded, or a
// concurrent writer won a race.
func IsTransient(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotYet),
		apierrors.IsConflict(err),
		apierrors.IsServerTimeout(err),
		apierrors.IsTimeout(err),
		apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err),
		apierrors.IsServiceUnavailable(err),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		// A connection closed by an API server that is shutting down or restarting.
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
