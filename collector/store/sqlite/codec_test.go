package sqlite

import (
	"errors"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// FuzzPageTokens: any string is either refused with ErrBadPageToken or
// decodes to a key that encodes back to a token giving the same key; tokens
// of one listing are never accepted by the other.
func FuzzPageTokens(f *testing.F) {
	for _, s := range []string{"", "garbage!!", "AAAA", nodeToken("node-001"), faultToken(1), faultToken(math.MaxInt64), nodeToken("ü"), "AW4", "AWYA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		name, nerr := parseNodeToken(tok)
		id, ferr := parseFaultToken(tok)
		if nerr == nil && ferr == nil {
			t.Fatalf("token %q accepted by both listings", tok)
		}
		if nerr != nil && !errors.Is(nerr, store.ErrBadPageToken) {
			t.Fatalf("parseNodeToken(%q) error %v", tok, nerr)
		}
		if ferr != nil && !errors.Is(ferr, store.ErrBadPageToken) {
			t.Fatalf("parseFaultToken(%q) error %v", tok, ferr)
		}
		if nerr == nil {
			if name == "" || !utf8.ValidString(name) {
				t.Fatalf("node token %q gave name %q", tok, name)
			}
			if again, err := parseNodeToken(nodeToken(name)); err != nil || again != name {
				t.Fatalf("round trip of %q: %q, %v", name, again, err)
			}
		}
		if ferr == nil {
			if id <= 0 {
				t.Fatalf("fault token %q gave id %d", tok, id)
			}
			if again, err := parseFaultToken(faultToken(id)); err != nil || again != id {
				t.Fatalf("round trip of %d: %d, %v", id, again, err)
			}
		}
	})
}

func TestPartKey(t *testing.T) {
	disk := hwhealv1.PartKind_PART_KIND_DISK
	tests := []struct {
		name string
		a, b *hwhealv1.Part
		same bool
	}{
		{"serial learnt later", &hwhealv1.Part{Kind: disk, Name: "sda"}, &hwhealv1.Part{Kind: disk, Name: "sda", Serial: "S", Model: "M", PciAddress: "0000:00:17.0"}, true},
		{"other name", &hwhealv1.Part{Kind: disk, Name: "sda"}, &hwhealv1.Part{Kind: disk, Name: "sdb"}, false},
		{"other kind", &hwhealv1.Part{Kind: disk, Name: "sda"}, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: "sda"}, false},
		{"by pci address", &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_GPU, PciAddress: "0000:3b:00.0"}, &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_GPU, PciAddress: "0000:3b:00.0", Serial: "X"}, true},
		{"pci address is not a name", &hwhealv1.Part{Kind: disk, PciAddress: "x"}, &hwhealv1.Part{Kind: disk, Name: "pci=x"}, false},
		{"by serial", &hwhealv1.Part{Kind: disk, Serial: "S1"}, &hwhealv1.Part{Kind: disk, Serial: "S2"}, false},
		{"nil and empty", nil, &hwhealv1.Part{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := partKey(tt.a) == partKey(tt.b); got != tt.same {
				t.Errorf("partKey(%v) = %q, partKey(%v) = %q; same = %v, want %v", tt.a, partKey(tt.a), tt.b, partKey(tt.b), got, tt.same)
			}
		})
	}
}

func TestPageSize(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{-1, 100}, {0, 100}, {1, 1}, {100, 100}, {999, 999}, {1000, 1000}, {1001, 1000}, {1 << 40, 1000}} {
		if got := pageSize(tt.in); got != tt.want {
			t.Errorf("pageSize(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
