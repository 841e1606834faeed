// Package yamldoc reads the one YAML document of a configuration file
// (rule files, the webhook and collector configuration) and says where a
// problem is: every loader of the project reports file and line, and this
// is the part they share - yaml.v3's errors turned into a line and a
// message, a stray second document refused, node kinds in words.
package yamldoc

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error is a problem with the YAML itself, at a line (1-based).
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Msg }

// yaml.v3 reports syntax errors as "yaml: line N: ...".
var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse reads data as exactly one YAML document and returns its root
// node, aliases followed (nil when data holds no document, or only null).
// A second document is an error at its line: a stray "---" would
// otherwise silently drop everything after it.
func Parse(data []byte) (*yaml.Node, *Error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, parseError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Line: extra.Line, Msg: "more than one YAML document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, parseError(data, err)
	}
	root := Resolve(&doc)
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = Resolve(root.Content[0])
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	return root, nil
}

// parseError gives yaml.v3's error its line: the one it names, or, for
// its reader errors (control characters, broken UTF-8), which name none,
// the line of the byte it stopped at.
func parseError(data []byte, err error) *Error {
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Line: line, Msg: m[2]}
	}
	return &Error{Line: badByteLine(data), Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// badByteLine is the line of the first byte YAML does not allow: a
// control character other than tab and line ends, or invalid UTF-8; the
// last line when there is none.
func badByteLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return line
		case r == '\n':
			line++
		case r < 0x20 && r != '\t' && r != '\r', r == 0x7f:
			return line
		}
		i += n
	}
	return line
}

// Resolve follows an alias to its anchored node. yaml.v3 refuses an
// anchor that contains itself, so one step suffices.
func Resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// Kind names a node's kind as an error message says it: "a mapping", "a
// list", "a null".
func Kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}
