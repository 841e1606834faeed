package transport

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/spool"
)

// blackholeProxy forwards TCP connections to a target until blackhole is
// called; from then on the connections it has stay open but every byte is
// swallowed, as with a collector host that lost power or a firewall that
// started dropping packets. New connections are forwarded again.
type blackholeProxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	conns  []*proxyConn
	wg     sync.WaitGroup
}

type proxyConn struct {
	dead       atomic.Bool
	agent, col net.Conn
}

func startProxy(t *testing.T, target string) *blackholeProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{lis: l, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			a, err := l.Accept()
			if err != nil {
				return
			}
			c, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			pc := &proxyConn{agent: a, col: c}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(pc, c, a)
			go p.pipe(pc, a, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, pc := range p.conns {
			pc.agent.Close()
			pc.col.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *blackholeProxy) pipe(pc *proxyConn, dst, src net.Conn) {
	defer p.wg.Done()
	defer pc.agent.Close()
	defer pc.col.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if pc.dead.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *blackholeProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.dead.Store(true)
	}
}

// TestDeadCollectorNoticed: when the collector's connection goes silent
// without closing, keepalive pings notice it and the client reconnects.
// Without keepalive the client would wait for acks forever. gRPC does not
// ping more often than every 10 s, so this test takes that long.
func TestDeadCollectorNoticed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs gRPC's 10 s minimum keepalive interval")
	}
	st := newTestStore()
	h := newHarness(t, "tcp")
	h.start(&testServer{store: st})
	p := startProxy(t, h.addr)
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	appendReports(t, sp, 10)

	hp := &harness{t: t, network: "tcp", addr: p.lis.Addr().String()}
	c, _ := runClient(t, hp, sp, func(cfg *Config) {
		cfg.KeepaliveTime = time.Second // raised to gRPC's minimum of 10 s
		cfg.KeepaliveTimeout = time.Second
	})
	eventually(t, 5*time.Second, "first reports acked", func() bool { return sp.Acked() == 10 })
	p.blackhole()
	appendReports(t, sp, 10)
	start := time.Now()
	eventually(t, 25*time.Second, "reports acked after the dead connection", func() bool { return sp.Acked() == 20 })
	t.Logf("dead connection noticed and replaced in %s", time.Since(start).Round(time.Millisecond))
	if s := c.Stats(); s.Connects < 2 {
		t.Fatalf("stats %+v, want a second connect", s)
	}
	stored, _, _, _, _ := st.snapshot()
	if !slices.Equal(stored, seqRange(1, 20)) {
		t.Fatalf("stored %v, want 1..20", stored)
	}
}
