package token

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// listColumns are the headings of `token list`.
var listColumns = []string{"TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"}

// FormatList writes tokens the way `kubeadm token list` prints them, byte for byte, so that scripts parsing
// that output keep working: the full token (as kubeadm shows it), TTL left at now, expiry in RFC 3339, usages,
// description, extra groups. kubeadm flushes a fresh tabwriter per token, with the heading in the first one
// only, and pads some cells to fixed widths; both quirks are kept because they decide the column positions.
// Nothing is written for an empty list, as kubeadm does.
func FormatList(w io.Writer, tokens []Info, now time.Time) error {
	for i, t := range tokens {
		tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
		if i == 0 {
			fmt.Fprintln(tw, strings.Join(listColumns, "\t"))
		}
		fmt.Fprint(tw, listRow(t, now))
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("writing the token list: %w", err)
		}
	}
	return nil
}

func listRow(t Info, now time.Time) string {
	ttl, expires := "<forever>", "<never>"
	if left, ok := t.TTL(now); ok {
		ttl = duration.ShortHumanDuration(left)
		expires = t.Expires.Format(time.RFC3339)
	}
	return fmt.Sprintf("%s\t%-9s\t%s\t%-22s\t%-56s\t%s\n",
		t.Token.Value(), ttl, expires, orNone(strings.Join(t.Usages, ",")), orNone(t.Description), orNone(strings.Join(t.Groups, ",")))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
