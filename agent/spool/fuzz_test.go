package spool

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzRecover feeds arbitrary bytes to Open as a segment file. Open must
// not fail or panic, must keep exactly a prefix of the file made of whole
// valid frames numbered 1, 2, ..., and must go on appending after it.
func FuzzRecover(f *testing.F) {
	var valid []byte
	for i := 1; i <= 5; i++ {
		r := obs(i)
		body, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		valid = appendFrame(valid, uint64(i), body)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append(bytes.Clone(valid), make([]byte, 64)...))
	f.Add(append(bytes.Clone(valid), "garbage"...))
	f.Add(appendFrame(nil, 7, nil))                // valid CRC, wrong seq for a segment named 1
	f.Add(appendFrame(nil, 1, []byte{0x12, 0xff})) // framing fine, body does not unmarshal
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1})

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		seg := filepath.Join(dir, "00000000000000000001"+segmentSuffix)
		if err := os.WriteFile(seg, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open on arbitrary segment bytes: %v", err)
		}
		defer s.Close()
		last := s.LastSeq()
		got, err := s.Read(1, 0, 0)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for i, r := range got {
			if r.Seq != uint64(i+1) {
				t.Fatalf("report %d has seq %d", i, r.Seq)
			}
		}
		kept, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, kept) {
			t.Fatal("recovery kept bytes that are not a prefix of the file")
		}
		// Recovery checks framing, CRC and seq; Read also unmarshals, and
		// a frame that passes the first but not the second is damage too.
		cut := len(kept) < len(data)
		readDamage := uint64(len(got)) < last
		if want := uint64(btoi(cut) + btoi(readDamage)); s.Stats().Corrupt != want {
			t.Fatalf("cut %v, unreadable frames %v, but Corrupt is %d", cut, readDamage, s.Stats().Corrupt)
		}
		r := obs(1 << 20)
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
		if r.Seq != last+1 {
			t.Fatalf("append after recovery got seq %d, want %d", r.Seq, last+1)
		}
		s.Close()
		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Stats().Corrupt != 0 || s.LastSeq() != last+1 {
			t.Fatalf("reopen: Corrupt %d LastSeq %d, want 0 %d", s.Stats().Corrupt, s.LastSeq(), last+1)
		}
		all, err := s.Read(1, 0, 0)
		if err != nil || len(all) != len(got)+1 || all[len(got)].Seq != last+1 || val(all[len(got)]) != 1<<20 {
			t.Fatalf("reopen read %v, err %v; want %d old reports and seq %d", seqs(all), err, len(got), last+1)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
