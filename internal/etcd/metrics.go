package etcd

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// snapshotsReceivedMetric counts, per sending member, the raft snapshots a member received and saved
// (etcd's rafthttp metrics).
const snapshotsReceivedMetric = "etcd_network_snapshot_receive_success"

// SnapshotsReceived reads, from the metrics listener of a member (metricsURL, e.g. "http://127.0.0.1:2381", its
// --listen-metrics-urls, which answers before the member serves clients), how many raft snapshots it has received
// from its leader. A new member installs one when the leader's raft log no longer starts at its first entry, which
// etcd 3.6 and later do after their first hundred entries.
func SnapshotsReceived(ctx context.Context, metricsURL string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(metricsURL, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req) // bounded by ctx
	if err != nil {
		return 0, fmt.Errorf("etcd metrics at %s: %w", metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("etcd metrics at %s: %s", metricsURL, resp.Status)
	}
	n, err := sumCounter(bufio.NewScanner(resp.Body), snapshotsReceivedMetric)
	if err != nil {
		return 0, fmt.Errorf("etcd metrics at %s: %w", metricsURL, err)
	}
	return n, nil
}

// sumCounter adds up the samples of the counter name (every label set) in Prometheus's text format.
func sumCounter(sc *bufio.Scanner, name string) (int, error) {
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	total := 0.0
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue // a comment, another metric, or one whose name only starts with name
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			return 0, fmt.Errorf("sample %q has no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("sample %q: %w", line, err)
		}
		total += v
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return int(total), nil
}
