package events

import "fmt"

// MaxDepth is how deeply JSON may nest inside a stored event (the envelope
// itself included). The receiver refuses a callback that would exceed it
// and the worker applies the same limit when decoding, so nothing is stored
// that a worker cannot read. Zoho's callbacks nest a handful of levels.
const MaxDepth = 64

// checkDepth reports JSON nested deeper than max: a byte scan (strings and
// their escapes skipped), far cheaper than a decode.
func checkDepth(b []byte, max int) error {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: JSON nested deeper than %d levels", ErrInvalidEnvelope, max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
