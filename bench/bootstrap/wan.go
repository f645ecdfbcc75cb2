package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// wanProxy forwards TCP connections to target, delaying every chunk by half
// the round-trip time in each direction, so that a loopback sshd looks like
// a distant node. Bandwidth is not limited.
type wanProxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	wg     sync.WaitGroup
}

func startWANProxy(host, target string, rtt time.Duration) (*wanProxy, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	p := &wanProxy{ln: ln, target: target, oneWay: rtt / 2}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *wanProxy) Addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

func (p *wanProxy) Close() {
	p.ln.Close()
	p.wg.Wait()
}

func (p *wanProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer s.Close()
			done := make(chan struct{}, 2)
			go func() { p.pipe(s, c); done <- struct{}{} }()
			go func() { p.pipe(c, s); done <- struct{}{} }()
			<-done
		}()
	}
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk released oneWay after it was read.
func (p *wanProxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 64*1024)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b: b[:n], at: time.Now().Add(p.oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, src)
}
