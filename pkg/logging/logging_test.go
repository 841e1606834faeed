package logging

import (
	"bytes"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantErr             bool
		want                string
	}{
		{name: "text info", level: "info", format: "text", want: "level=INFO msg=hello"},
		{name: "json debug", level: "debug", format: "json", want: `"msg":"hello"`},
		{name: "bad level", level: "loud", format: "text", wantErr: true},
		{name: "bad format", level: "info", format: "xml", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(&buf, tt.level, tt.format)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			l.Info("hello")
			l.Debug("quiet")
			if !strings.Contains(buf.String(), tt.want) {
				t.Fatalf("output %q lacks %q", buf.String(), tt.want)
			}
			if tt.level == "info" && strings.Contains(buf.String(), "quiet") {
				t.Fatal("debug line printed at info level")
			}
		})
	}
}
