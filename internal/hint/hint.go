// Package hint attaches advice for the user to an error: what to do next, printed by the CLI's Main on a line of
// its own after the error. The advice is not part of the error's text, so wrapping the error keeps it without
// repeating it in every message that quotes the error.
package hint

import "errors"

// hinted is an error with advice; Error and errors.Is/As see the error alone.
type hinted struct {
	err  error
	text string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

// With returns err carrying text as advice for the user; nil stays nil.
func With(err error, text string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, text: text}
}

// Of returns the advice of the outermost hinted error in err's chain, or "" when there is none.
func Of(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.text
	}
	return ""
}
