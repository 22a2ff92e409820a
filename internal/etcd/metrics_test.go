package etcd

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSnapshotsReceived(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"none yet: the counter has no sample", "# HELP etcd_network_snapshot_receive_success Total number of successful snapshot receives\n# TYPE etcd_network_snapshot_receive_success counter\netcd_server_has_leader 1\n", 0},
		{"one from the leader", "etcd_network_snapshot_receive_success{From=\"252902638f78db76\"} 1\netcd_network_snapshot_receive_successes_other 7\netcd_network_snapshot_receive_failures{From=\"252902638f78db76\"} 3\n", 1},
		{"from two leaders", "etcd_network_snapshot_receive_success{From=\"a\"} 1\netcd_network_snapshot_receive_success{From=\"b\"} 2\n", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" {
					http.NotFound(w, r)
					return
				}
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			got, err := SnapshotsReceived(t.Context(), srv.URL)
			if err != nil || got != tc.want {
				t.Errorf("SnapshotsReceived = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestSnapshotsReceivedErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("etcd_network_snapshot_receive_success{From=\"a\"} many\n"))
	}))
	defer srv.Close()
	if _, err := SnapshotsReceived(t.Context(), srv.URL); err == nil || !strings.Contains(err.Error(), "many") {
		t.Errorf("a sample that is not a number: %v, want an error naming it", err)
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if _, err := SnapshotsReceived(t.Context(), down.URL); err == nil || !strings.Contains(err.Error(), down.URL) {
		t.Errorf("no listener: %v, want an error naming %s", err, down.URL)
	}
}
