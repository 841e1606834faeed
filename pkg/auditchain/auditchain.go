// Package auditchain defines the hash chain of the audit log: how a
// record's hash is computed from its fields and the hash of the record
// before it, and how a listing of records is verified. The collector's
// store computes the hashes as it appends; hwhealctl audit verify checks
// them on the operator's side, so a record changed, removed or inserted
// behind the collector's back shows.
//
// The chain proves the log unbroken from its first record to its last; it
// cannot tell a whole log rewritten by someone who recomputed every hash.
// Verify returns the head hash so that it can be written down elsewhere
// (a ticket, a second system) and compared later.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Size is the length of a hash.
const Size = sha256.Size

// Genesis is the prev_hash of the first record.
var Genesis = make([]byte, Size)

// domain separates these hashes from any other SHA-256 of the same bytes.
const domain = "hwheal-audit-v1\n"

// Hash is the hash of a record with the given fields whose predecessor
// hashed to prev. Each field is length-prefixed (uvarint), so no two
// different records encode alike; the time counts in nanoseconds since the
// Unix epoch, as stored.
func Hash(prev []byte, id uint64, at time.Time, actor, kind, node, actionID, detail string) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	var buf [binary.MaxVarintLen64]byte
	field := func(b []byte) {
		n := binary.PutUvarint(buf[:], uint64(len(b)))
		h.Write(buf[:n])
		h.Write(b)
	}
	field([]byte(strconv.FormatUint(id, 10)))
	field([]byte(strconv.FormatInt(at.UnixNano(), 10)))
	field([]byte(actor))
	field([]byte(kind))
	field([]byte(node))
	field([]byte(actionID))
	field([]byte(detail))
	field(prev)
	return h.Sum(nil)
}

// RecordHash is Hash over a record's own fields and its prev_hash.
func RecordHash(r *hwhealv1.AuditRecord) []byte {
	return Hash(r.GetPrevHash(), r.GetId(), r.GetTime().AsTime(), r.GetActor(), r.GetKind(), r.GetNode(), r.GetActionId(), r.GetDetail())
}

// Verifier checks records fed to it in id order, from the first record of
// the log, one page at a time.
type Verifier struct {
	n    uint64
	last []byte
}

// Add checks the next record: its id follows the previous one's (the first
// is 1), its prev_hash is the previous record's hash (Genesis for the
// first), and its hash is what its fields give. The error names the first
// record that does not hold.
func (v *Verifier) Add(r *hwhealv1.AuditRecord) error {
	want := v.n + 1
	if r.GetId() != want {
		if r.GetId() > want {
			return fmt.Errorf("audit record %d: records %d..%d are missing", r.GetId(), want, r.GetId()-1)
		}
		return fmt.Errorf("audit record %d: out of order or repeated after record %d", r.GetId(), v.n)
	}
	prev := v.last
	if v.n == 0 {
		prev = Genesis
	}
	if !bytes.Equal(r.GetPrevHash(), prev) {
		return fmt.Errorf("audit record %d: prev_hash %s is not the hash of record %d (%s): a record was changed, removed or inserted", r.GetId(), short(r.GetPrevHash()), v.n, short(prev))
	}
	if got := RecordHash(r); !bytes.Equal(got, r.GetHash()) {
		return fmt.Errorf("audit record %d: its fields hash to %s, not its stored hash %s: the record was changed after it was written", r.GetId(), short(got), short(r.GetHash()))
	}
	v.n, v.last = r.GetId(), r.GetHash()
	return nil
}

// Count is the number of records verified.
func (v *Verifier) Count() uint64 { return v.n }

// Head is the hash of the last record verified (Genesis for none), in hex.
func (v *Verifier) Head() string {
	if v.n == 0 {
		return hex.EncodeToString(Genesis)
	}
	return hex.EncodeToString(v.last)
}

func short(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	if s == "" {
		return "(empty)"
	}
	return s
}
