package textclip

import (
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	tests := []struct {
		name, in, mark string
		max            int
		head, tail     string
	}{
		{"fits", "abc", "…", 3, "abc", "abc"},
		{"ascii", "abcdefgh", "", 5, "abcde", "defgh"},
		{"ascii with a mark", "abcdefgh", "…", 6, "abc…", "…fgh"},
		{"cut inside a character", "aé€b", "", 4, "aé", "€b"},
		{"cut inside a character with a mark", "aéééb", "…", 6, "aé…", "…éb"},
		{"invalid UTF-8", "a\xffb", "", 5, "a\uFFFDb", "a\uFFFDb"},
		{"invalid UTF-8 grows past the bound", "\xff\xff\xff\xff", "", 4, "\uFFFD", "\uFFFD"},
		{"invalid UTF-8 before the cut", "\xffabcde", "", 5, "\uFFFDab", "abcde"},
		{"mark only", "éééé", "…", 4, "…", "…"},
		{"no room for the mark", "abcdef", "…", 2, "ab", "ef"},
		{"zero", "abc", "", 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, tl := Head(tt.in, tt.max, tt.mark), Tail(tt.in, tt.max, tt.mark)
			if h != tt.head || tl != tt.tail {
				t.Errorf("Head %q, Tail %q; want %q, %q", h, tl, tt.head, tt.tail)
			}
			for _, got := range []string{h, tl} {
				if !utf8.ValidString(got) || len(got) > tt.max {
					t.Errorf("%q: invalid or over %d bytes", got, tt.max)
				}
			}
		})
	}
}

func FuzzClip(f *testing.F) {
	f.Add("aéééb\xff", 4, "…")
	f.Fuzz(func(t *testing.T, s string, max int, mark string) {
		if max < 0 || max > 1<<16 || !utf8.ValidString(mark) {
			return // marks are constants of valid UTF-8
		}
		for _, got := range []string{Head(s, max, mark), Tail(s, max, mark)} {
			if !utf8.ValidString(got) || len(got) > max {
				t.Fatalf("%q (max %d, mark %q) -> %q", s, max, mark, got)
			}
		}
	})
}
