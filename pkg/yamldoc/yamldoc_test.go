package yamldoc

import (
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		kind     yaml.Kind // of the root; 0 for none
		line     int       // of the error; 0 for none
		msg      string
	}{
		{name: "empty", in: ""},
		{name: "comment only", in: "# nothing\n"},
		{name: "null", in: "~\n"},
		{name: "mapping", in: "a: 1\n", kind: yaml.MappingNode},
		{name: "alias root followed", in: "--- &x [1]\n", kind: yaml.SequenceNode},
		{name: "syntax error names its line", in: "a: 1\nb: [\n", line: 2, msg: "did not find expected node content"},
		{name: "second document", in: "a: 1\n---\nb: 2\n", line: 2, msg: "more than one YAML document"},
		{name: "control character without a line from yaml", in: "a: 1\nb: \x01\n", line: 2, msg: "control characters are not allowed"},
		{name: "broken utf-8", in: "a: 1\n\nb: \xff\n", line: 3, msg: "invalid leading UTF-8 octet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := Parse([]byte(tt.in))
			if tt.line != 0 {
				if err == nil || err.Line != tt.line || err.Msg != tt.msg {
					t.Fatalf("error %v, want line %d: %s", err, tt.line, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.kind == 0 {
				if root != nil {
					t.Fatalf("root %v, want none", root)
				}
				return
			}
			if root == nil || root.Kind != tt.kind {
				t.Fatalf("root %v, want kind %v", root, tt.kind)
			}
		})
	}
}

func TestKind(t *testing.T) {
	for in, want := range map[string]string{"a: 1": "mapping", "[1]": "list", "x": "scalar", "~": "null"} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(in), &doc); err != nil {
			t.Fatal(err)
		}
		if got := Kind(doc.Content[0]); got != want {
			t.Errorf("Kind(%q) = %q, want %q", in, got, want)
		}
	}
}
