package sqlite

import (
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Page sizes: the default and the most one page may hold.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func pageSize(n int) int {
	switch {
	case n <= 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return n
}

// Times are stored as nanoseconds since the Unix epoch. UnixNano is defined
// for years 1678..2262; outside that (a broken agent clock) a time counts as
// missing.
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func validNanoTime(t time.Time) bool {
	return !t.IsZero() && t.After(minNanoTime) && t.Before(maxNanoTime)
}

// tsTime returns the time of ts, or fallback when ts is unset or cannot be
// stored.
func tsTime(ts *timestamppb.Timestamp, fallback time.Time) time.Time {
	if ts == nil || ts.CheckValid() != nil {
		return fallback
	}
	if t := ts.AsTime(); validNanoTime(t) {
		return t
	}
	return fallback
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func tsFromNanos(n int64) *timestamppb.Timestamp {
	return timestamppb.New(time.Unix(0, n))
}

func tsFromNull(n sql.NullInt64) *timestamppb.Timestamp {
	if !n.Valid {
		return nil
	}
	return tsFromNanos(n.Int64)
}

// marshal encodes m deterministically (map fields sorted), so the same
// value always gives the same bytes; nil stays NULL.
func marshal(m proto.Message) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// unmarshalInto decodes b into m; an empty b leaves m zero.
func unmarshalInto(b []byte, m proto.Message, what string) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// partKey is the identity of a part within a node: its kind and kernel
// name, so the same disk reported twice is the same fault whatever else the
// reports say about it (a serial that was unknown the first time, a model).
// A part without a name (a device known only by its PCI address or serial)
// falls back to those.
func partKey(p *hwhealv1.Part) string {
	kind := strconv.Itoa(int(p.GetKind()))
	// The letter says which field the key comes from, so that a name can
	// never be taken for an address.
	switch {
	case p.GetName() != "":
		return kind + ":n:" + p.GetName()
	case p.GetPciAddress() != "":
		return kind + ":p:" + p.GetPciAddress()
	case p.GetSerial() != "":
		return kind + ":s:" + p.GetSerial()
	}
	return kind + ":"
}

func labelsJSON(l map[string]string) (string, error) {
	if len(l) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("encode labels: %w", err)
	}
	return string(b), nil
}

func parseLabels(s string) (map[string]string, error) {
	var l map[string]string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode labels: %w", err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// Page tokens are the last key of the page, base64url-encoded behind a
// version byte and a kind byte, so a token of one listing given to another
// is refused rather than misread.
const (
	tokenVersion     = 1
	tokenKindNodes   = 'n'
	tokenKindFaults  = 'f'
	tokenKindActions = 'a'
	tokenKindAudit   = 'u'
)

func nodeToken(lastName string) string {
	b := append([]byte{tokenVersion, tokenKindNodes}, lastName...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseNodeToken(tok string) (string, error) {
	b, err := decodeToken(tok, tokenKindNodes)
	if err != nil {
		return "", err
	}
	if len(b) == 0 || !utf8.Valid(b) {
		return "", store.ErrBadPageToken
	}
	return string(b), nil
}

func faultToken(lastID int64) string { return idToken(tokenKindFaults, lastID) }

func parseFaultToken(tok string) (int64, error) { return parseIDToken(tok, tokenKindFaults) }

// idToken is the token of a listing in id order (faults, audit records).
func idToken(kind byte, lastID int64) string {
	b := binary.AppendUvarint([]byte{tokenVersion, kind}, uint64(lastID))
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseIDToken(tok string, kind byte) (int64, error) {
	b, err := decodeToken(tok, kind)
	if err != nil {
		return 0, err
	}
	id, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || id == 0 || id > math.MaxInt64 {
		return 0, store.ErrBadPageToken
	}
	return int64(id), nil
}

// actionKey is the position of an action in listings: newest first by
// created, then by id.
type actionKey struct {
	created int64
	id      string
}

func actionToken(k actionKey) string {
	b := binary.AppendVarint([]byte{tokenVersion, tokenKindActions}, k.created)
	b = append(b, k.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseActionToken(tok string) (actionKey, error) {
	b, err := decodeToken(tok, tokenKindActions)
	if err != nil {
		return actionKey{}, err
	}
	created, n := binary.Varint(b)
	if n <= 0 || n == len(b) || !utf8.Valid(b[n:]) {
		return actionKey{}, store.ErrBadPageToken
	}
	return actionKey{created: created, id: string(b[n:])}, nil
}

func decodeToken(tok string, kind byte) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || b[0] != tokenVersion || b[1] != kind {
		return nil, store.ErrBadPageToken
	}
	return b[2:], nil
}
