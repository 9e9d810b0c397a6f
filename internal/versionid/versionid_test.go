package versionid

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		id   string
		v    uint64
		want bool
	}{
		{"1-0", 1, true},
		{"18446744073709551615-0", 1<<64 - 1, true},
		{"0-0", 0, false},
		{"5-1", 0, false},
		{"5", 0, false},
		{"-0", 0, false},
		{"x-0", 0, false},
	} {
		v, ok := Parse(tc.id)
		if ok != tc.want || ok && v != tc.v {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tc.id, v, ok, tc.v, tc.want)
		}
		if ok && Format(v) != tc.id {
			t.Errorf("Format(%d) = %q, want %q", v, Format(v), tc.id)
		}
	}
}
