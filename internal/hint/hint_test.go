package hint

import (
	"errors"
	"fmt"
	"testing"
)

func TestWithAndOf(t *testing.T) {
	base := errors.New("etcd is down")
	tests := []struct {
		name     string
		err      error
		wantMsg  string
		wantHint string
	}{
		{name: "hinted", err: With(base, "start etcd"), wantMsg: "etcd is down", wantHint: "start etcd"},
		{name: "wrapped", err: fmt.Errorf("phase etcd: %w", With(base, "start etcd")), wantMsg: "phase etcd: etcd is down", wantHint: "start etcd"},
		{name: "joined", err: errors.Join(errors.New("other"), With(base, "start etcd")), wantMsg: "other\netcd is down", wantHint: "start etcd"},
		{name: "the outermost advice wins", err: With(fmt.Errorf("reset: %w", With(base, "inner")), "outer"), wantMsg: "reset: etcd is down", wantHint: "outer"},
		{name: "no advice", err: fmt.Errorf("phase etcd: %w", base), wantMsg: "phase etcd: etcd is down", wantHint: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", got, tt.wantMsg)
			}
			if got := Of(tt.err); got != tt.wantHint {
				t.Errorf("Of() = %q, want %q", got, tt.wantHint)
			}
			if !errors.Is(tt.err, base) {
				t.Error("errors.Is does not see the cause")
			}
		})
	}
	if With(nil, "advice") != nil {
		t.Error("With(nil) is not nil")
	}
	if Of(nil) != "" {
		t.Error("Of(nil) is not empty")
	}
}
