package ctl

import (
	"os"
	"strings"
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestToken: every call carries the token as a bearer, the event stream
// too; the flags win over the environment; a token never shows in an
// error.
func TestToken(t *testing.T) {
	f := &fakeFleet{fakeData: fakeData{events: []*hwhealv1.Event{{Id: 1, Type: hwhealv1.EventType_EVENT_TYPE_NODE_CONNECTED, Node: "web-1"}}}}
	e := startFake(t, f)
	t.Setenv("HWHEAL_TOKEN", "")
	t.Setenv("HWHEAL_TOKEN_FILE", "")
	token := map[string]string{}
	for _, u := range fakeUsers {
		token[u.user] = u.token
	}
	base := []string{"--collector", e.addr, "--insecure"}
	runAs := func(t *testing.T, args ...string) (string, string, error) {
		t.Helper()
		return e.run(t, "", append(args, base...)...)
	}
	// whoCalled runs status and events, and returns who the server saw
	// on each (the unary call and the stream).
	whoCalled := func(t *testing.T, args ...string) (unary, stream string) {
		t.Helper()
		f.reset()
		if _, _, err := runAs(t, append([]string{"status"}, args...)...); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runAs(t, append([]string{"events"}, args...)...); err != nil {
			t.Fatal(err)
		}
		u, s := f.requests("GetRemediationStatus"), f.requests("WatchEvents")
		if len(u) != 1 || len(s) != 1 {
			t.Fatalf("%d status and %d events calls", len(u), len(s))
		}
		if s[0].auth != "Bearer "+token[s[0].user] || u[0].auth != "Bearer "+token[u[0].user] {
			t.Errorf("authorization headers %q, %q", u[0].auth, s[0].auth)
		}
		return u[0].user, s[0].user
	}
	f.update(func(d *fakeData) { d.status = fullStatus() })

	t.Run("--token-file", func(t *testing.T) {
		if u, s := whoCalled(t, "--token-file", e.tokenFiles["bob"]); u != "bob" || s != "bob" {
			t.Errorf("server saw %q and %q", u, s)
		}
	})
	t.Run("--token", func(t *testing.T) {
		if u, s := whoCalled(t, "--token", token["alice"]); u != "alice" || s != "alice" {
			t.Errorf("server saw %q and %q", u, s)
		}
	})
	t.Run("HWHEAL_TOKEN", func(t *testing.T) {
		t.Setenv("HWHEAL_TOKEN", token["root"])
		if u, s := whoCalled(t); u != "root" || s != "root" {
			t.Errorf("server saw %q and %q", u, s)
		}
		// A flag wins over the environment.
		if u, _ := whoCalled(t, "--token-file", e.tokenFiles["vic"]); u != "vic" {
			t.Errorf("--token-file over HWHEAL_TOKEN: server saw %q", u)
		}
	})
	t.Run("HWHEAL_TOKEN_FILE", func(t *testing.T) {
		t.Setenv("HWHEAL_TOKEN_FILE", e.tokenFiles["vic"])
		if u, s := whoCalled(t); u != "vic" || s != "vic" {
			t.Errorf("server saw %q and %q", u, s)
		}
		if u, _ := whoCalled(t, "--token", token["bob"]); u != "bob" {
			t.Errorf("--token over HWHEAL_TOKEN_FILE: server saw %q", u)
		}
		t.Setenv("HWHEAL_TOKEN", token["alice"])
		if u, _ := whoCalled(t); u != "alice" {
			t.Errorf("HWHEAL_TOKEN over HWHEAL_TOKEN_FILE: server saw %q", u)
		}
	})

	t.Run("no token", func(t *testing.T) {
		for _, cmd := range []string{"status", "events"} {
			_, _, err := runAs(t, cmd)
			if err == nil || err.Error() != "unauthenticated: no token: pass --token, HWHEAL_TOKEN or --token-file" {
				t.Errorf("%s without a token: %v", cmd, err)
			}
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		_, _, err := runAs(t, "status", "--token", "not-a-token-of-this-fleet")
		wantErr(t, err, "unauthenticated: unknown token")
		if strings.Contains(err.Error(), "not-a-token") {
			t.Errorf("error %q echoes the token", err)
		}
	})

	secret := "s3cr3t-t0ken-0123456789"
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"both flags", []string{"--token", secret, "--token-file", e.tokenFiles["vic"]}, "--token and --token-file: pass one of them"},
		{"missing file", []string{"--token-file", "/nonexistent/token"}, "token file: open /nonexistent/token"},
		{"empty file", []string{"--token-file", writeFile(t, "empty", "\n\n")}, "is empty"},
		{"two words", []string{"--token-file", writeFile(t, "two", secret+" "+secret+"\n")}, "want just the token"},
		{"tokens file given as token file", []string{"--token-file", writeFile(t, "tokens", secret+",alice,admin\n"+secret+"x,bob,viewer\n")}, "want just the token"},
		{"token with a space", []string{"--token", "s3cr3t t0ken"}, "--token: a token is printable ASCII without spaces"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			f.reset()
			_, _, err := runAs(t, append([]string{"status"}, tt.args...)...)
			wantErr(t, err, tt.want)
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q echoes the token", err)
			}
			if len(f.requests("GetRemediationStatus")) != 0 {
				t.Error("a request was sent")
			}
		})
	}

	t.Run("open token file", func(t *testing.T) {
		path := writeFile(t, "open.token", token["vic"]+"\n")
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := runAs(t, "status", "--token-file", path)
		if err != nil || !strings.Contains(stderr, "token file "+path+" is open to group or others") {
			t.Errorf("status with a 0644 token file: %v, stderr %q", err, stderr)
		}
	})

	t.Run("offline commands need none", func(t *testing.T) {
		if _, _, err := runAs(t, "policy", "check", shippedPolicies[0], "--token-file", "/nonexistent"); err != nil {
			t.Errorf("policy check read the token file: %v", err)
		}
	})
}
