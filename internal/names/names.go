// Package names checks the names that go into Redis keys (categories,
// namespaces, read-model and projection names) and the event type names
// stored in every entry. The rules live here once; each package that
// exposes a validator keeps its own error type and message, built from the
// Fault reported here.
package names

// Fault is what is wrong with a name.
type Fault int

// The faults, in the order they are checked.
const (
	OK      Fault = iota
	Empty         // no bytes
	TooLong       // more bytes than allowed
	BadByte       // a byte outside the allowed set
)

// The allowed punctuation, besides ASCII letters and digits, of the two
// alphabets in use.
const (
	// Tagged: names that appear inside a hash tag (categories), where ':'
	// and '-' would be ambiguous: [A-Za-z0-9_.].
	Tagged = "_."
	// Plain: names that only prefix or follow in a key (namespaces,
	// read models, projections): [A-Za-z0-9_.-].
	Plain = "_.-"
)

// Check reports the first fault of name as a name of 1 to max bytes, each
// an ASCII letter, digit or one of extra; for BadByte, b is the first byte
// not allowed.
func Check(name string, max int, extra string) (f Fault, b byte) {
	switch {
	case name == "":
		return Empty, 0
	case len(name) > max:
		return TooLong, 0
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !allowed(c, extra) {
			return BadByte, c
		}
	}
	return OK, 0
}

func allowed(c byte, extra string) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	for i := 0; i < len(extra); i++ {
		if c == extra[i] {
			return true
		}
	}
	return false
}

// Printable reports whether s has no space, ASCII control character or DEL
// (bytes of UTF-8 sequences are allowed): the rule of event type names,
// which tools print.
func Printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}
