package pgleader_test

import (
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy stands between the tests' electors and the server: it passes traffic
// both ways, delays it, or holds it back (a partition that keeps the sockets
// open, as a dead network does).
type proxy struct {
	ln      net.Listener
	target  string
	delay   atomic.Int64 // added to every chunk, each way
	mu      sync.Mutex
	blocked bool
	cond    *sync.Cond // broadcast when blocked changes
	conns   []net.Conn
	wg      sync.WaitGroup
}

// newProxy starts a proxy to the server of dbURL, and returns it with the URL
// that goes through it.
func newProxy(t *testing.T, dbURL string) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" {
		t.Fatalf("the test server's URL %q has no host to proxy", dbURL)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: u.Host}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(s, c) })
		p.wg.Go(func() { p.pipe(c, s) })
	}
}

// pipe copies from src to dst, chunk by chunk, each after the delay and
// while the proxy is not blocked.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(time.Duration(p.delay.Load()))
			p.mu.Lock()
			for p.blocked {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// block holds all traffic back, in both directions, until unblock.
func (p *proxy) block() { p.setBlocked(true) }

func (p *proxy) unblock() { p.setBlocked(false) }

func (p *proxy) setBlocked(b bool) {
	p.mu.Lock()
	p.blocked = b
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.unblock()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
