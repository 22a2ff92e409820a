package cri

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// TailLog returns the messages of the last n log entries of a container's log file (ContainerStatus.LogPath),
// read through fsys. The file is in the kubelet's CRI format, one "<RFC3339Nano time> <stream> <tag> <msg>" per
// line; entries the runtime split into partial lines (tag "P") are joined back into one message.
func TailLog(fsys nodefs.FS, path string, n int) ([]string, error) {
	f, err := os.Open(fsys.Path(path))
	if err != nil {
		return nil, fmt.Errorf("read container log: %w", err)
	}
	defer f.Close()
	msgs, err := LastLogMessages(f, n)
	if err != nil {
		return nil, fmt.Errorf("read container log %s: %w", path, err)
	}
	return msgs, nil
}

// LastLogMessages reads a whole CRI-format log and keeps the last n messages. Lines that are not in CRI format
// are kept whole rather than dropped: they are still the best clue to what went wrong.
func LastLogMessages(r io.Reader, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	ring := make([]string, 0, n)
	err := eachMessage(r, func(msg string) {
		if len(ring) == n {
			copy(ring, ring[1:])
			ring = ring[:n-1]
		}
		ring = append(ring, msg)
	})
	if err != nil {
		return nil, err
	}
	return ring, nil
}

// errorMessage matches a message that says why a process stopped. A program refusing its flags often prints the
// reason once and then its whole usage, which fills the tail of its log.
var errorMessage = regexp.MustCompile(`(?i)(\berror\b|\bfatal\b|\bpanic\b|unknown flag|not defined|\binvalid\b|\bfailed\b)`)

// ErrorLogMessages returns the log's first n messages that read like an error (see errorMessage), whatever
// follows them: with TailLog's last lines, what a diagnosis shows of a container that stopped.
func ErrorLogMessages(fsys nodefs.FS, path string, n int) ([]string, error) {
	f, err := os.Open(fsys.Path(path))
	if err != nil {
		return nil, fmt.Errorf("read container log: %w", err)
	}
	defer f.Close()
	var out []string
	err = eachMessage(f, func(msg string) {
		if len(out) < n && errorMessage.MatchString(msg) {
			out = append(out, msg)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read container log %s: %w", path, err)
	}
	return out, nil
}

// eachMessage calls f with each message of a CRI-format log, partial lines joined.
func eachMessage(r io.Reader, f func(msg string)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var partial strings.Builder
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimSuffix(line, "\n")
			msg, isPartial := ParseLogLine(line)
			partial.WriteString(msg)
			if !isPartial {
				f(partial.String())
				partial.Reset()
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	// A trailing partial entry is a message the container is still writing: show what there is.
	if partial.Len() > 0 {
		f(partial.String())
	}
	return nil
}

// ParseLogLine splits one CRI log line into its message and whether it is a partial entry (tag "P").
// A line that is not in CRI format is returned whole, as a complete entry.
func ParseLogLine(line string) (msg string, partial bool) {
	// time, stream, tag, msg: the message itself may contain spaces, so split at most three times.
	fields := strings.SplitN(line, " ", 4)
	if len(fields) < 3 || (fields[1] != "stdout" && fields[1] != "stderr") {
		return line, false
	}
	if len(fields) == 4 {
		msg = fields[3]
	}
	// The tag is a ":"-separated list; its first element is P (partial) or F (full).
	tag, _, _ := strings.Cut(fields[2], ":")
	switch tag {
	case "P":
		return msg, true
	case "F":
		return msg, false
	}
	return line, false
}
