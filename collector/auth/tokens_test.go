package auth_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hwheal/hwheal/collector/auth"
)

// Tokens of the tests: long enough, and easy to spot in an error.
const (
	tokViewer   = "viewer-token-0123456789"
	tokOperator = "operator-token-0123456789"
	tokApprover = "approver-token-0123456789"
	tokAdmin    = "admin-token-0123456789abc"
)

const goodFile = "\ufeff" + `# fleet API tokens: token,user,role
viewer-token-0123456789,victor,viewer

operator-token-0123456789 , olga , operator
   # indented comment
approver-token-0123456789,alice@ops,Approver` + "\r" + `
admin-token-0123456789abc,root admin,admin
second-token-for-olga-000,olga,operator
`

func TestParse(t *testing.T) {
	toks, err := auth.Parse(strings.NewReader(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	if toks.Len() != 5 {
		t.Errorf("%d tokens, want 5", toks.Len())
	}
	for token, want := range map[string]auth.Identity{
		tokViewer:                   {User: "victor", Role: auth.Viewer},
		tokOperator:                 {User: "olga", Role: auth.Operator},
		tokApprover:                 {User: "alice@ops", Role: auth.Approver},
		tokAdmin:                    {User: "root admin", Role: auth.Admin},
		"second-token-for-olga-000": {User: "olga", Role: auth.Operator},
	} {
		if got, ok := toks.Lookup(token); !ok || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", token, got, ok, want)
		}
	}
	for _, bad := range []string{"", "viewer-token-012345678", "viewer-token-01234567890", " " + tokViewer, "VIEWER-TOKEN-0123456789"} {
		if id, ok := toks.Lookup(bad); ok {
			t.Errorf("Lookup(%q) = %+v: not a token of the file", bad, id)
		}
	}
	var none *auth.Tokens
	if _, ok := none.Lookup(tokAdmin); ok || none.Len() != 0 {
		t.Error("a nil Tokens knows a token")
	}
}

const secret = "s3cr3t-t0ken-do-not-print"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // each a line of the error
	}{
		{"too few fields", "# c\n" + secret + ",alice\n", []string{"line 2: want token,user,role: found 2 fields"}},
		{"too many fields", secret + ",alice,admin,extra\n", []string{"line 1: want token,user,role: found 4 fields"}},
		{"no commas", secret + "\n", []string{"line 1: want token,user,role: found 1 fields"}},
		{"empty token", " ,alice,admin\n", []string{"line 1: empty token"}},
		{"short token", "0123456789abcde,alice,admin\n", []string{"line 1: token shorter than 16 characters"}},
		{"token with space", "s3cr3t t0ken-do-not-print,alice,admin\n", []string{"line 1: token holds a character other than printable ASCII"}},
		{"token not ascii", "s3cr3t-t0ken-dö-not-print,alice,admin\n", []string{"line 1: token holds a character other than printable ASCII"}},
		{"empty user", secret + ",,admin\n", []string{"line 1: empty user"}},
		{"user with colon", secret + ",policy:evil,admin\n", []string{"line 1: user holds ':'"}},
		{"user breaker", secret + ",Breaker,admin\n", []string{"line 1: user is breaker or collector"}},
		{"user collector", secret + ",collector,admin\n", []string{"line 1: user is breaker or collector"}},
		{"user too long", secret + "," + strings.Repeat("u", 129) + ",admin\n", []string{"line 1: user longer than 128 bytes"}},
		{"user not printable", secret + ",al\x01ice,admin\n", []string{"line 1: user is not printable UTF-8"}},
		{"empty role", secret + ",alice,\n", []string{"line 1: empty role"}},
		{"unknown role", secret + ",alice,root\n", []string{"line 1: unknown role (use viewer, operator, approver or admin)"}},
		// Columns swapped: the token is where the role goes, and is not
		// echoed either.
		{"token as role", "alice-is-a-long-name,alice," + secret + "\n", []string{"line 1: unknown role"}},
		{"duplicate token", "# tokens\n" + secret + ",alice,admin\n\n" + secret + ",bob,viewer\n", []string{"line 4: the same token as line 2"}},
		{"user with two roles", secret + ",alice,admin\nanother-token-0123456,alice,viewer\n",
			[]string{"line 2: the user of line 1 with another role (viewer here, admin there): a user has one role"}},
		{"no tokens", "# nothing yet\n\n", []string{"no tokens"}},
		{"empty file", "", []string{"no tokens"}},
		{"line too long", secret + ",alice,admin\n" + strings.Repeat("x", 5000) + "\n", []string{"line 2: longer than 4096 bytes"}},
		{"every error reported", secret + ",alice,root\nshort,bob,admin\n" + secret + ",carol\n",
			[]string{"line 1: unknown role", "line 2: token shorter than 16 characters", "line 3: want token,user,role: found 2 fields"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := auth.Parse(strings.NewReader(tt.file))
			if err == nil {
				t.Fatalf("parsed %d tokens, want an error", toks.Len())
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("error %q: want %d lines", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error line %q, want it to start with %q", lines[i], w)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	order := []auth.Role{auth.Viewer, auth.Operator, auth.Approver, auth.Admin}
	for i, have := range order {
		for j, need := range order {
			if got := have.Includes(need); got != (i >= j) {
				t.Errorf("%s.Includes(%s) = %v", have, need, got)
			}
		}
		if r, err := auth.ParseRole(strings.ToUpper(have.String())); err != nil || r != have {
			t.Errorf("ParseRole(%s) = %v, %v", have, r, err)
		}
		// No role includes nothing, and nothing is included by it.
		if auth.Role(0).Includes(have) || have.Includes(auth.Role(0)) {
			t.Errorf("the zero role and %s include each other", have)
		}
	}
	if _, err := auth.ParseRole("superuser"); err == nil {
		t.Error("ParseRole(superuser) succeeded")
	}
	if s := auth.Role(9).String(); s != "role(9)" {
		t.Errorf("Role(9) = %s", s)
	}
}

// logBuffer is a logger and what it wrote.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte(goodFile), 0o600); err != nil {
		t.Fatal(err)
	}
	log, logs := newLog()
	toks, err := auth.Load(path, log)
	if err != nil || toks.Len() != 5 {
		t.Fatalf("Load: %v, %v", toks, err)
	}
	if logs.String() != "" {
		t.Errorf("a 0600 file was warned about: %s", logs)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		log, logs := newLog()
		if _, err := auth.Load(path, log); err != nil {
			t.Fatal(err)
		}
		if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "open to group or others") || !strings.Contains(out, path) {
			t.Errorf("mode %04o: no warning naming the file: %q", mode, out)
		}
	}

	t.Run("errors name the file and line", func(t *testing.T) {
		bad := filepath.Join(dir, "bad")
		if err := os.WriteFile(bad, []byte("# x\n"+secret+",alice,root\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		log, logs := newLog()
		_, err := auth.Load(bad, log)
		if err == nil || !strings.Contains(err.Error(), "tokens file "+bad+": line 2: unknown role") {
			t.Errorf("Load: %v", err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("the token leaked: %v; %s", err, logs)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := auth.Load(filepath.Join(dir, "nope"), slog.New(slog.DiscardHandler)); err == nil || !os.IsNotExist(unwrapAll(err)) {
			t.Errorf("Load of a missing file: %v", err)
		}
	})
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestAdminToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // made on the way
	log, logs := newLog()
	toks, err := auth.AdminToken(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, auth.AdminTokenFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode %04o, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSuffix(string(b), "\n")
	if raw, err := hex.DecodeString(token); err != nil || len(raw) != 32 {
		t.Fatalf("admin.token holds %q: want 32 bytes in hex", token)
	}
	if id, ok := toks.Lookup(token); !ok || id != (auth.Identity{User: "admin", Role: auth.Admin}) || toks.Len() != 1 {
		t.Errorf("Lookup(admin token) = %+v, %v (%d tokens)", id, ok, toks.Len())
	}
	out := logs.String()
	if !strings.Contains(out, "admin token created") || !strings.Contains(out, path) || strings.Contains(out, token) {
		t.Errorf("log should name the path and not the token: %s", out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("state directory holds %v: a temporary file was left", entries)
	}

	// The next start reads the same token.
	log, logs = newLog()
	again, err := auth.AdminToken(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Lookup(token); !ok {
		t.Error("second start made a new token")
	}
	if out := logs.String(); !strings.Contains(out, "admin token in use") || strings.Contains(out, token) {
		t.Errorf("second start log: %s", out)
	}

	t.Run("opened up", func(t *testing.T) {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(path, 0o600)
		log, logs := newLog()
		if _, err := auth.AdminToken(dir, log); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "open to group or others") {
			t.Errorf("no warning: %s", logs)
		}
	})
	t.Run("damaged", func(t *testing.T) {
		for _, content := range []string{"", "short\n", "two words-0123456789abcdef\n"} {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, auth.AdminTokenFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := auth.AdminToken(dir, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "remove it") {
				t.Errorf("content %q: %v", content, err)
			}
		}
	})
	t.Run("concurrent starts agree", func(t *testing.T) {
		dir := t.TempDir()
		var wg sync.WaitGroup
		results := make([]*auth.Tokens, 8)
		for i := range results {
			wg.Go(func() {
				toks, err := auth.AdminToken(dir, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Error(err)
				}
				results[i] = toks
			})
		}
		wg.Wait()
		b, err := os.ReadFile(filepath.Join(dir, auth.AdminTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		for i, toks := range results {
			if _, ok := toks.Lookup(strings.TrimSpace(string(b))); !ok {
				t.Errorf("start %d uses another token than the file's", i)
			}
		}
	})
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte(goodFile), 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := auth.Open(path, dir, slog.New(slog.DiscardHandler))
	if err != nil || toks.Len() != 5 {
		t.Fatalf("Open(tokens file): %v, %v", toks, err)
	}
	if _, err := os.Stat(filepath.Join(dir, auth.AdminTokenFile)); !os.IsNotExist(err) {
		t.Errorf("a collector with a tokens file made admin.token: %v", err)
	}
	toks, err = auth.Open("", dir, slog.New(slog.DiscardHandler))
	if err != nil || toks.Len() != 1 {
		t.Fatalf("Open(no tokens file): %v, %v", toks, err)
	}
	if _, err := os.Stat(filepath.Join(dir, auth.AdminTokenFile)); err != nil {
		t.Errorf("no admin.token: %v", err)
	}
}

func TestContext(t *testing.T) {
	if _, ok := auth.FromContext(context.Background()); ok {
		t.Error("identity in an empty context")
	}
	id := auth.Identity{User: "alice", Role: auth.Approver}
	if got, ok := auth.FromContext(auth.NewContext(context.Background(), id)); !ok || got != id {
		t.Errorf("FromContext = %+v, %v", got, ok)
	}
}
