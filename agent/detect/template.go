package detect

import (
	"errors"
	"fmt"
	"strings"
)

// template is a text with {capture} references, parsed once at load.
// "{{" and "}}" stand for literal braces.
type template struct {
	parts []tmplPart
	refs  []int // capture groups the template uses
}

type tmplPart struct {
	lit   string
	group int // capture group index; -1 for a literal
}

// templates are alternatives: the first whose captures all matched is used,
// so that a rule can say "I/O error on {device} at sector {sector}" and fall
// back to "I/O error on {device}" when the kernel (or a truncated paste)
// left the sector out.
type templates []template

func parseTemplate(s string, groups map[string]int) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tmplPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{':
			if i+1 < len(s) && s[i+1] == '{' {
				lit.WriteByte('{')
				i++
				continue
			}
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return template{}, fmt.Errorf("unterminated { at offset %d", i)
			}
			name := s[i+1 : i+1+end]
			if name == "" {
				return template{}, errors.New("empty {} reference")
			}
			g, ok := groups[name]
			if !ok {
				return template{}, fmt.Errorf("capture %q is not a named group of the pattern", name)
			}
			flush()
			t.parts = append(t.parts, tmplPart{group: g})
			t.refs = append(t.refs, g)
			i += end + 1
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				lit.WriteByte('}')
				i++
				continue
			}
			return template{}, fmt.Errorf("unmatched } at offset %d", i)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// group returns the text of capture group g of msg, given the submatch
// index slice from regexp.FindStringSubmatchIndex.
func group(msg string, idx []int, g int) string {
	if 2*g+1 >= len(idx) || idx[2*g] < 0 {
		return ""
	}
	return msg[idx[2*g]:idx[2*g+1]]
}

func (t template) complete(msg string, idx []int) bool {
	for _, g := range t.refs {
		if group(msg, idx, g) == "" {
			return false
		}
	}
	return true
}

func (t template) render(msg string, idx []int) string {
	if len(t.parts) == 1 && t.parts[0].group < 0 {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.group < 0 {
			b.WriteString(p.lit)
		} else {
			b.WriteString(group(msg, idx, p.group))
		}
	}
	return b.String()
}

// render uses the first alternative whose captures all matched, else the
// last one with whatever it has.
func (ts templates) render(msg string, idx []int) string {
	if len(ts) == 0 {
		return ""
	}
	for _, t := range ts[:len(ts)-1] {
		if t.complete(msg, idx) {
			return t.render(msg, idx)
		}
	}
	return ts[len(ts)-1].render(msg, idx)
}
