package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// openLoader offers a fixed load to one proxy: rate requests per second,
// spread over keep-alive connections it keeps from one slice of load to the
// next, each request sent at its scheduled time whether or not earlier ones
// have been answered. A request that finds no free connection waits for
// one, and that wait counts in its latency, which is measured from the
// scheduled time: no coordinated omission (wrk2's method; wrk itself is a
// closed loop). Requests are written raw and responses read by
// Content-Length, so that the generator costs little of the two shared
// cores.
type openLoader struct {
	addr   string
	useTLS bool
	req    []byte
	conns  []*loadConn
}

type loadConn struct {
	c  net.Conn
	br *bufio.Reader
}

func newOpenLoader(addr string, useTLS bool, host, path string, conns int) *openLoader {
	return &openLoader{addr: addr, useTLS: useTLS, req: []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"),
		conns: make([]*loadConn, conns)}
}

// loadSlice is what one run of an openLoader measured.
type loadSlice struct {
	ms   []float64 // latency of each answered request, from its scheduled time
	sent []float64 // the same from when it was written: without the generator's lateness or a wait for a connection
	late []float64 // how late the generator itself sent each request (ms): its own share of the latency
	errs int
}

// run offers rate req/s for d and returns when every request was answered.
func (g *openLoader) run(rate int, d time.Duration) loadSlice {
	n := int(float64(rate) * d.Seconds())
	sched := make(chan time.Time, n)
	var errs atomic.Int64
	results := make([][]float64, len(g.conns))
	fromSend := make([][]float64, len(g.conns))
	var wg sync.WaitGroup
	for i := range g.conns {
		wg.Go(func() {
			lc := g.conns[i]
			for t := range sched {
				if lc == nil {
					c, err := dialBench(g.addr, g.useTLS)
					if err != nil {
						errs.Add(1)
						continue
					}
					lc = &loadConn{c: c, br: bufio.NewReaderSize(c, 32<<10)}
				}
				sent := time.Now()
				lc.c.SetDeadline(sent.Add(10 * time.Second))
				_, err := lc.c.Write(g.req)
				if err == nil {
					err = readResponse(lc.br)
				}
				if err != nil {
					errs.Add(1)
					lc.c.Close()
					lc = nil
					continue
				}
				results[i] = append(results[i], float64(time.Since(t).Microseconds())/1000)
				fromSend[i] = append(fromSend[i], float64(time.Since(sent).Microseconds())/1000)
			}
			g.conns[i] = lc
		})
	}
	late := make([]float64, 0, n)
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		t := start.Add(time.Duration(i) * interval)
		if w := time.Until(t); w > 0 {
			time.Sleep(w)
		}
		late = append(late, float64(time.Since(t).Microseconds())/1000)
		sched <- t
	}
	close(sched)
	wg.Wait()
	var ms, fs []float64
	for i := range results {
		ms, fs = append(ms, results[i]...), append(fs, fromSend[i]...)
	}
	return loadSlice{ms: ms, sent: fs, late: late, errs: int(errs.Load())}
}

func (g *openLoader) close() {
	for i, lc := range g.conns {
		if lc != nil {
			lc.c.Close()
			g.conns[i] = nil
		}
	}
}

// percentiles sorts ms and reads p50, p99 and the maximum from it.
func percentiles(ms []float64, errs int) latencies {
	slices.Sort(ms)
	l := latencies{errs: errs}
	if len(ms) > 0 {
		l.p50, l.p99, l.max = ms[len(ms)/2], ms[len(ms)*99/100], ms[len(ms)-1]
	}
	return l
}

func dialBench(addr string, useTLS bool) (net.Conn, error) {
	if useTLS {
		return tls.DialWithDialer(&net.Dialer{Timeout: 60 * time.Second}, "tcp", addr, insecureTLS())
	}
	return net.DialTimeout("tcp", addr, 60*time.Second)
}

// readResponse reads one response with a Content-Length body.
func readResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	status := bytes.HasPrefix(line, []byte("HTTP/1.1 200 "))
	statusLine := string(bytes.TrimSpace(line))
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if name, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(name, []byte("content-length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 {
		return fmt.Errorf("no Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return err
	}
	if !status {
		return fmt.Errorf("answered %q", statusLine)
	}
	return nil
}
