package auth_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/collector/auth"
)

// parseErrorLine is every shape a line of Parse's error may take: fixed
// words and numbers, never a field of the file. Any other text could be
// a token.
var parseErrorLine = regexp.MustCompile(`^(line \d+: (` + strings.Join([]string{
	`want token,user,role: found \d+ fields`,
	`empty token`,
	`token shorter than 16 characters`,
	`token holds a character other than printable ASCII without spaces \(it travels in a header\)`,
	`empty user`,
	`user longer than 128 bytes`,
	`user is not printable UTF-8`,
	`user holds ':', which the audit log keeps for policy:<rule> and agent:<node>`,
	`user is breaker or collector, names the collector records for itself`,
	`empty role \(use viewer, operator, approver or admin\)`,
	`unknown role \(use viewer, operator, approver or admin\)`,
	`the same token as line \d+`,
	`the user of line \d+ with another role \((viewer|operator|approver|admin) here, (viewer|operator|approver|admin) there\): a user has one role`,
	`longer than 4096 bytes`,
}, "|") + `)|no tokens: the file has no token,user,role line)$`)

// FuzzParse: whatever the file, Parse does not panic; its errors are made
// of the fixed messages only (so no token is ever echoed); and what it
// accepts, it accepts whole: every token line it read resolves to its
// user and role.
func FuzzParse(f *testing.F) {
	f.Add(goodFile)
	f.Add("# c\n" + secret + ",alice\n")
	f.Add(secret + ",alice,root\nshort,bob,admin\n" + secret + ",carol\n")
	f.Add(secret + ",alice,admin\n" + secret + ",bob,viewer\n")
	f.Add(secret + ",alice,admin\nanother-token-0123456,alice,viewer\n")
	f.Add("alice-is-a-long-name,alice," + secret + "\n")
	f.Add("\xff\xfe,\x00,admin\r\n")
	f.Fuzz(func(t *testing.T, file string) {
		toks, err := auth.Parse(strings.NewReader(file))
		if err != nil {
			for _, l := range strings.Split(err.Error(), "\n") {
				if !parseErrorLine.MatchString(l) {
					t.Fatalf("error line %q is not one of the fixed messages", l)
				}
			}
			return
		}
		if toks.Len() == 0 {
			t.Fatal("no error and no tokens")
		}
		for _, line := range strings.Split(strings.TrimPrefix(file, "\ufeff"), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			fields := strings.Split(line, ",")
			id, ok := toks.Lookup(strings.TrimSpace(fields[0]))
			if !ok {
				t.Fatalf("token of line %q not found", line)
			}
			role, err := auth.ParseRole(strings.TrimSpace(fields[2]))
			if err != nil || id.User != strings.TrimSpace(fields[1]) || id.Role != role {
				t.Fatalf("line %q resolved to %+v", line, id)
			}
		}
	})
}
