package cri

import (
	"strings"
	"testing"
)

// FuzzParseLogLine checks the reader of CRI log lines ("<time> <stream> <tag> <msg>"): a line the runtime wrote
// gives back its message and its partial flag, anything else comes back whole as a complete entry.
func FuzzParseLogLine(f *testing.F) {
	for _, s := range []string{
		"2026-12-03T19:00:00.123456789Z stderr F etcd: listening on 127.0.0.1:2379",
		"2026-12-03T19:00:00.123456789Z stdout P part of a ",
		"2026-12-03T19:00:00.123456789Z stdout F",
		"2026-12-03T19:00:00.123456789Z stdout F:x message",
		"2026-12-03T19:00:00.123456789Z stdin F message",
		"not a CRI line", "", "a b", "a stdout X msg",
	} {
		f.Add(s, "message with  spaces", true)
	}
	f.Fuzz(func(t *testing.T, line, msg string, partial bool) {
		got, isPartial := ParseLogLine(line)
		if !isPartial && got != line && !strings.HasSuffix(line, " "+got) && !(got == "" && len(strings.SplitN(line, " ", 4)) == 3) {
			t.Fatalf("ParseLogLine(%q) = %q: neither the line nor its end", line, got)
		}
		if isPartial && !strings.HasSuffix(line, got) {
			t.Fatalf("ParseLogLine(%q) = partial %q: not the end of the line", line, got)
		}
		tag := "F"
		if partial {
			tag = "P"
		}
		for _, stream := range []string{"stdout", "stderr"} {
			written := "2026-12-03T19:00:00.123456789Z " + stream + " " + tag + " " + msg
			if got, p := ParseLogLine(written); got != msg || p != partial {
				t.Fatalf("ParseLogLine(%q) = %q, %v; want %q, %v", written, got, p, msg, partial)
			}
		}
	})
}

// FuzzLastLogMessages feeds whole log files to LastLogMessages: it keeps at most n messages, the last of them, and
// a log written as partial lines reads as the one message they make.
func FuzzLastLogMessages(f *testing.F) {
	f.Add("2026-12-03T19:00:00Z stderr F one\n2026-12-03T19:00:01Z stderr P tw\n2026-12-03T19:00:01Z stderr F o\n", 2, "a long message")
	f.Add("garbage\n\n\nmore garbage", 1, "")
	f.Add("2026-12-03T19:00:00Z stdout P unfinished", 5, "x")
	f.Fuzz(func(t *testing.T, log string, n int, msg string) {
		if n > 1000 {
			n %= 1000
		}
		got, err := LastLogMessages(strings.NewReader(log), n)
		if err != nil {
			t.Fatalf("LastLogMessages: %v", err)
		}
		if n <= 0 && got != nil || n > 0 && len(got) > n {
			t.Fatalf("LastLogMessages(n=%d) kept %d messages", n, len(got))
		}
		if strings.Contains(msg, "\n") || n <= 0 {
			return
		}
		// The runtime splits a long message into partial lines: any split must read back as the message.
		var b strings.Builder
		b.WriteString(log)
		if log != "" && !strings.HasSuffix(log, "\n") {
			b.WriteString("\n")
		}
		// A complete entry ends whatever partial entry the log ends with.
		b.WriteString("2026-12-03T19:00:00Z stderr F end\n")
		for i := 0; i < len(msg); i += 3 {
			end := min(i+3, len(msg))
			tag := "P"
			if end == len(msg) {
				tag = "F"
			}
			b.WriteString("2026-12-03T19:00:00Z stderr " + tag + " " + msg[i:end] + "\n")
		}
		if msg == "" {
			b.WriteString("2026-12-03T19:00:00Z stderr F \n")
		}
		got, err = LastLogMessages(strings.NewReader(b.String()), n)
		if err != nil || len(got) == 0 || got[len(got)-1] != msg {
			t.Fatalf("a message written as partial lines read back as %q, %v; want it to end with %q\n%s", got, err, msg, b.String())
		}
	})
}
