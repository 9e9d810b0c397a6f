package names

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		max         int
		fault       Fault
		b           byte
	}{
		{"account", Tagged, 64, OK, 0},
		{"a.b_C9", Tagged, 64, OK, 0},
		{"a-b", Tagged, 64, BadByte, '-'},
		{"a-b", Plain, 64, OK, 0},
		{"", Plain, 64, Empty, 0},
		{strings.Repeat("x", 64), Plain, 64, OK, 0},
		{strings.Repeat("x", 65), Plain, 64, TooLong, 0},
		{"a b:", Plain, 64, BadByte, ' '},
		{"a{", Tagged, 64, BadByte, '{'},
		{"ü", Plain, 64, BadByte, 0xc3},
	} {
		f, b := Check(tc.name, tc.max, tc.extra)
		if f != tc.fault || b != tc.b {
			t.Errorf("Check(%q, %d, %q) = %d, %q; want %d, %q", tc.name, tc.max, tc.extra, f, b, tc.fault, tc.b)
		}
	}
}

func TestPrintable(t *testing.T) {
	for s, want := range map[string]bool{"": true, "order.placed/v2": true, "ü": true, "a b": false, "a\tb": false, "a\x7f": false} {
		if got := Printable(s); got != want {
			t.Errorf("Printable(%q) = %v", s, got)
		}
	}
}
