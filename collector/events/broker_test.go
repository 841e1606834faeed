package events

import (
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func ev(id uint64) *hwhealv1.Event { return &hwhealv1.Event{Id: id} }

func TestBrokerDeliversInOrder(t *testing.T) {
	b := NewBroker(16)
	s := b.Subscribe()
	defer s.Close()
	b.Publish(ev(1), ev(2))
	b.Publish(ev(3))
	for want := uint64(1); want <= 3; want++ {
		got := <-s.C()
		if got.GetId() != want {
			t.Fatalf("event %d: got id %d", want, got.GetId())
		}
	}
}

func TestBrokerDropsSlowWatcherWithoutBlocking(t *testing.T) {
	b := NewBroker(2)
	slow := b.Subscribe()
	fast := b.Subscribe()
	defer fast.Close()
	b.Publish(ev(1), ev(2))
	<-fast.C()
	<-fast.C()
	b.Publish(ev(3)) // slow's buffer is full: it must be dropped, not block
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow watcher was not dropped")
	}
	if !slow.Overflowed() {
		t.Fatal("Overflowed() = false for a dropped watcher")
	}
	if got := (<-fast.C()).GetId(); got != 3 {
		t.Fatalf("fast watcher got %d, want 3", got)
	}
	if b.Subscribers() != 1 {
		t.Fatalf("subscribers = %d, want 1", b.Subscribers())
	}
	if _, overflows := b.Stats(); overflows != 1 {
		t.Fatalf("overflows = %d, want 1", overflows)
	}
}

func TestSubscriptionCloseIsIdempotent(t *testing.T) {
	b := NewBroker(1)
	s := b.Subscribe()
	s.Close()
	s.Close()
	b.Publish(ev(1))
	if s.Overflowed() {
		t.Fatal("closed subscription reported overflow")
	}
}
