package s3test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Gate is a TCP proxy in front of a server that can hold the client's
// bytes at a point of the stream: to catch an upload in the middle, where
// a test kills the server or the client, whatever the machine's speed.
type Gate struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	sent    int64 // client bytes forwarded, all connections
	after   int64 // hold once sent reaches it; < 0: never
	held    chan struct{}
	heldSet bool
	release chan struct{}
}

// NewGate proxies to target until t ends.
func NewGate(t testing.TB, target string) *Gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{ln: ln, target: target, after: -1, held: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); g.Release() })
	go g.serve()
	return g
}

// Addr is the address clients use.
func (g *Gate) Addr() string { return g.ln.Addr().String() }

// HoldAfter holds client bytes once n more have passed; Held is closed
// when that happens.
func (g *Gate) HoldAfter(n int64) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.after = g.sent + n
	return g.held
}

// Release lets held bytes through, and all bytes from then on.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.after = -1
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func (g *Gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		go g.proxy(c)
	}
}

func (g *Gate) proxy(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { io.Copy(c, up); c.Close() }()
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			g.wait(int64(n))
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait counts n bytes and blocks while the gate holds.
func (g *Gate) wait(n int64) {
	g.mu.Lock()
	hold := g.after >= 0 && g.sent+n > g.after
	if hold && !g.heldSet {
		g.heldSet = true
		close(g.held)
	}
	release := g.release
	if !hold {
		g.sent += n
	}
	g.mu.Unlock()
	if hold {
		<-release
		g.mu.Lock()
		g.sent += n
		g.mu.Unlock()
	}
}
