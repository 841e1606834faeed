package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinTokenLen is the shortest token a tokens file may hold.
const MinTokenLen = 16

// MaxUserBytes bounds a user name: it is recorded with every action,
// note and audit record.
const MaxUserBytes = 128

// AdminTokenFile is the name, in the state directory, of the token a
// collector started without a tokens file makes for itself.
const AdminTokenFile = "admin.token"

// AdminUser is the user of the admin token.
const AdminUser = "admin"

// maxLine bounds one line of a tokens file.
const maxLine = 4096

// Tokens are the identities a collector accepts, looked up by the SHA-256
// of their token: a lookup compares digests, never the token's bytes, so
// how long it takes says nothing about how much of a guess was right.
type Tokens struct {
	byHash map[[sha256.Size]byte]Identity
}

// Lookup returns the identity of token.
func (t *Tokens) Lookup(token string) (Identity, bool) {
	if t == nil {
		return Identity{}, false
	}
	id, ok := t.byHash[sha256.Sum256([]byte(token))]
	return id, ok
}

// Len is the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byHash)
}

// Parse reads a tokens file: one `token,user,role` a line, `#` comment
// lines and blank lines allowed. Every problem is reported with its line
// number and none with the token, so that an error can go to a log. A
// token must be at least MinTokenLen printable ASCII characters (it
// travels in a header); a user is printable UTF-8 of at most MaxUserBytes
// without ':' (the audit log's "policy:<rule>" and "agent:<node>" actors)
// and is not "breaker" or "collector"; a user has one role however many
// tokens it has. A file with no token is an error: it would lock everyone
// out.
func Parse(r io.Reader) (*Tokens, error) {
	t := &Tokens{byHash: map[[sha256.Size]byte]Identity{}}
	tokenLine := map[[sha256.Size]byte]int{}
	type userRole struct {
		role Role
		line int
	}
	users := map[string]userRole{}
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("line %d: "+format, append([]any{line}, args...)...))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			// Editors on some systems start a file with a byte order mark.
			line = strings.TrimPrefix(line, "\ufeff")
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) != 3 {
			// The line is not echoed: it holds a token.
			fail(n, "want token,user,role: found %d fields", len(fields))
			continue
		}
		token, user, roleName := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1]), strings.TrimSpace(fields[2])
		bad := false
		switch {
		case token == "":
			fail(n, "empty token")
			bad = true
		case len(token) < MinTokenLen:
			fail(n, "token shorter than %d characters", MinTokenLen)
			bad = true
		case strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			fail(n, "token holds a character other than printable ASCII without spaces (it travels in a header)")
			bad = true
		}
		if err := checkUser(user); err != nil {
			fail(n, "%v", err)
			bad = true
		}
		role, err := ParseRole(roleName)
		if roleName == "" {
			fail(n, "empty role (use viewer, operator, approver or admin)")
			bad = true
		} else if err != nil {
			fail(n, "unknown role (use viewer, operator, approver or admin)")
			bad = true
		}
		if bad {
			continue
		}
		h := sha256.Sum256([]byte(token))
		if first, dup := tokenLine[h]; dup {
			fail(n, "the same token as line %d", first)
			continue
		}
		if u, seen := users[user]; seen && u.role != role {
			fail(n, "the user of line %d with another role (%s here, %s there): a user has one role", u.line, role, u.role)
			continue
		}
		tokenLine[h] = n
		users[user] = userRole{role, n}
		t.byHash[h] = Identity{User: user, Role: role}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			fail(n+1, "longer than %d bytes", maxLine)
		} else {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && len(t.byHash) == 0 {
		errs = append(errs, errors.New("no tokens: the file has no token,user,role line"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

func checkUser(u string) error {
	switch {
	case u == "":
		return errors.New("empty user")
	case len(u) > MaxUserBytes:
		return fmt.Errorf("user longer than %d bytes", MaxUserBytes)
	case !utf8.ValidString(u) || strings.IndexFunc(u, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return errors.New("user is not printable UTF-8")
	case strings.Contains(u, ":"):
		return errors.New("user holds ':', which the audit log keeps for policy:<rule> and agent:<node>")
	case strings.EqualFold(u, "breaker") || strings.EqualFold(u, "collector"):
		return errors.New("user is breaker or collector, names the collector records for itself")
	}
	return nil
}

// Load reads the tokens file at path. A file that group or others may
// read or write is used, with a warning: its tokens are as good as
// published.
func Load(path string, log *slog.Logger) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		warnOpen(log, path, st.Mode())
	}
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return t, nil
}

func warnOpen(log *slog.Logger, path string, mode fs.FileMode) {
	if mode.Perm()&0o077 != 0 {
		log.Warn("token file is open to group or others; chmod 600 it", "path", path, "mode", fmt.Sprintf("%04o", mode.Perm()))
	}
}

// AdminToken is the token of a collector started without a tokens file:
// dir/admin.token, made on first start (32 random bytes in hex, mode
// 0600) and read on every start after, for user "admin" with role admin.
// It logs the file's path, never the token.
func AdminToken(dir string, log *slog.Logger) (*Tokens, error) {
	path := filepath.Join(dir, AdminTokenFile)
	token, err := readTokenFile(path, log)
	if errors.Is(err, fs.ErrNotExist) {
		var created bool
		token, created, err = createAdminToken(dir, path)
		if err == nil && !created {
			// Another collector on the same directory made it first.
			token, err = readTokenFile(path, log)
		}
		if err == nil && created {
			log.Info("fleet API admin token created: pass it to hwhealctl with --token-file", "path", path, "user", AdminUser)
		}
	} else if err == nil {
		log.Info("fleet API admin token in use: pass it to hwhealctl with --token-file", "path", path, "user", AdminUser)
	}
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(token))
	return &Tokens{byHash: map[[sha256.Size]byte]Identity{h: {User: AdminUser, Role: Admin}}}, nil
}

// readTokenFile reads a file that holds one token.
func readTokenFile(path string, log *slog.Logger) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		warnOpen(log, path, st.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLine))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < MinTokenLen || strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return "", fmt.Errorf("%s does not hold one token of at least %d printable characters: remove it and restart to make a new one", path, MinTokenLen)
	}
	return token, nil
}

// createAdminToken writes a new token to a temporary file and links it to
// path, so that path never exists half written and a token already there
// is never replaced (created is then false).
func createAdminToken(dir, path string) (token string, created bool, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", false, fmt.Errorf("create state directory: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	token = hex.EncodeToString(b)
	tmp, err := os.CreateTemp(dir, "."+AdminTokenFile+"-*")
	if err != nil {
		return "", false, fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600; say so rather than rely on it.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(token + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("create %s: %w", path, err)
	}
	return token, true, nil
}

// Open is the collector's choice of identities: the tokens file when one
// is given, else the admin token in stateDir.
func Open(tokensFile, stateDir string, log *slog.Logger) (*Tokens, error) {
	if tokensFile != "" {
		t, err := Load(tokensFile, log)
		if err != nil {
			return nil, err
		}
		log.Info("fleet API tokens loaded", "path", tokensFile, "tokens", t.Len())
		return t, nil
	}
	return AdminToken(stateDir, log)
}
