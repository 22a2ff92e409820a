// Command testsummary reads `go test -json` on stdin, prints the tests' output as `go test -v` would, and ends
// with the output of every failed test, so that a failure in a long e2e run is also in the last lines of its
// log (CI shows the tail). It exits 1 when a test or package failed, or when a package started and never
// reported a result (a build failure, a crash, a killed run).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is the part of test2json's TestEvent this reads.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// key names a test, or a package when test is empty.
type key struct{ pkg, test string }

// maxLines bounds what the summary repeats of one failed test: its last lines hold the failure.
const maxLines = 40

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// summarize copies the output of the events in r to w, then the output of each failed test (or package). It
// reports whether anything failed or did not finish.
func summarize(r io.Reader, w io.Writer) (bool, error) {
	output := map[key][]string{}
	var failedTests []key
	started := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go's own messages before the tests start): pass it on as it is.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "start":
			started[e.Package] = true
		case "output", "build-output":
			fmt.Fprint(w, e.Output)
			output[k] = append(output[k], e.Output)
		case "fail", "build-fail":
			failedTests = append(failedTests, k)
			if e.Test == "" {
				delete(started, e.Package)
			}
		case "pass", "skip":
			if e.Test == "" {
				delete(started, e.Package)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	if len(failedTests) == 0 && len(started) == 0 {
		return false, nil
	}
	fmt.Fprintf(w, "\n==== summary: %d failed\n", len(failedTests))
	for _, k := range failedTests {
		name := k.pkg
		if k.test != "" {
			// A parent fails with its subtest: its own output is only the RUN and FAIL lines around it.
			if hasFailedChild(failedTests, k.pkg, k.test) {
				continue
			}
			name += " " + k.test
		}
		lines := withoutFrames(output[k])
		if len(lines) > maxLines {
			lines = append([]string{fmt.Sprintf("[... %d lines before]\n", len(lines)-maxLines)}, lines[len(lines)-maxLines:]...)
		}
		fmt.Fprintf(w, "---- %s\n%s", name, strings.Join(lines, ""))
	}
	for pkg := range started {
		fmt.Fprintf(w, "---- %s: started, never reported a result\n", pkg)
	}
	return true, nil
}

// hasFailedChild reports whether a subtest of test failed too.
func hasFailedChild(failed []key, pkg, test string) bool {
	for _, f := range failed {
		if f.pkg == pkg && strings.HasPrefix(f.test, test+"/") {
			return true
		}
	}
	return false
}

// withoutFrames drops the RUN, NAME, CONT and PAUSE lines, which say where output belongs and nothing else.
func withoutFrames(lines []string) []string {
	var out []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "=== RUN") || strings.HasPrefix(t, "=== NAME") || strings.HasPrefix(t, "=== CONT") || strings.HasPrefix(t, "=== PAUSE") {
			continue
		}
		out = append(out, l)
	}
	return out
}
