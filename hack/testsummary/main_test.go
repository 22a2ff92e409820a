package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func events(t *testing.T, evs ...event) string {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestSummaryRepeatsTheFailedLeafsOutput(t *testing.T) {
	const pkg = "kubeboot.dev/kubeboot/test/e2e"
	in := events(t,
		event{Action: "start", Package: pkg},
		event{Action: "output", Package: pkg, Test: "TestJoin", Output: "=== RUN   TestJoin\n"},
		event{Action: "output", Package: pkg, Test: "TestJoin/ok", Output: "    join_test.go:10: fine\n"},
		event{Action: "pass", Package: pkg, Test: "TestJoin/ok"},
		event{Action: "output", Package: pkg, Test: "TestJoin/truncated", Output: "=== RUN   TestJoin/truncated\n"},
		event{Action: "output", Package: pkg, Test: "TestJoin/truncated", Output: "    snapshot_test.go:380: the refused rebuild wrote on kblab-cp1\n"},
		event{Action: "fail", Package: pkg, Test: "TestJoin/truncated"},
		event{Action: "fail", Package: pkg, Test: "TestJoin"},
		event{Action: "output", Package: pkg, Output: "FAIL\n"},
		event{Action: "fail", Package: pkg},
	)
	var out bytes.Buffer
	failed, err := summarize(strings.NewReader(in), &out)
	if err != nil || !failed {
		t.Fatalf("summarize = %v, %v; want a failure", failed, err)
	}
	got := out.String()
	summary, ok := strings.CutPrefix(got[strings.Index(got, "\n==== summary"):], "\n")
	if !ok {
		t.Fatalf("no summary:\n%s", got)
	}
	want := "==== summary: 3 failed\n" +
		"---- " + pkg + " TestJoin/truncated\n    snapshot_test.go:380: the refused rebuild wrote on kblab-cp1\n" +
		"---- " + pkg + "\nFAIL\n"
	if summary != want {
		t.Errorf("summary:\n%s\nwant:\n%s", summary, want)
	}
	if !strings.HasPrefix(got, "=== RUN   TestJoin\n    join_test.go:10: fine\n") {
		t.Errorf("the stream is not passed on as go test -v prints it:\n%s", got)
	}
}

func TestSummaryPassAndUnfinished(t *testing.T) {
	const pkg = "example.com/p"
	var out bytes.Buffer
	pass := events(t, event{Action: "start", Package: pkg}, event{Action: "pass", Package: pkg})
	if failed, err := summarize(strings.NewReader("go: downloading x\n"+pass), &out); err != nil || failed {
		t.Errorf("a passing package: failed %v, %v", failed, err)
	}
	if !strings.HasPrefix(out.String(), "go: downloading x\n") {
		t.Errorf("a line that is no event is not passed on: %q", out.String())
	}
	out.Reset()
	crashed := events(t, event{Action: "start", Package: pkg}, event{Action: "output", Package: pkg, Test: "TestX", Output: "=== RUN   TestX\n"})
	failed, err := summarize(strings.NewReader(crashed), &out)
	if err != nil || !failed || !strings.Contains(out.String(), pkg+": started, never reported a result") {
		t.Errorf("a package that never ended: failed %v, %v:\n%s", failed, err, out.String())
	}
}
