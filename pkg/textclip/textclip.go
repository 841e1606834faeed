// Package textclip bounds text that crosses the agent-collector boundary:
// it cuts a string to a number of bytes at a character boundary and makes
// it valid UTF-8, as a protobuf string must be. The agent clips what it
// reports and the collector clips what it stores, with the same code.
package textclip

import (
	"strings"
	"unicode/utf8"
)

// Head returns s as valid UTF-8 (invalid bytes become U+FFFD) of at most
// max bytes, keeping its start; a string that had to be cut ends in mark
// (valid UTF-8), counted within max, or left out when max has no room for
// it.
func Head(s string, max int, mark string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	if max < len(mark) {
		mark = ""
	}
	cut := max - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// Tail is Head keeping the end of s (the end of a command's output says
// how it ended); a string that had to be cut starts with mark.
func Tail(s string, max int, mark string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	if max < len(mark) {
		mark = ""
	}
	cut := len(s) - (max - len(mark))
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return mark + s[cut:]
}
