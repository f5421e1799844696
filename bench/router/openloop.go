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

// openLoop offers a fixed load: rate requests per second for d, spread over
// conns keep-alive connections, each request sent at its scheduled time
// whether or not earlier ones have been answered. A request that finds no
// free connection waits for one, and that wait counts in its latency, which
// is measured from the scheduled time: no coordinated omission (wrk2's
// method; wrk itself is a closed loop). Requests are written raw and
// responses read by Content-Length, so that the generator costs little of
// the two shared cores.
func openLoop(addr string, useTLS bool, host, path string, rate, conns int, d time.Duration) (latencies, int64) {
	n := int(float64(rate) * d.Seconds())
	sched := make(chan time.Time, n)
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
	var errs atomic.Int64
	results := make([][]float64, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			var c net.Conn
			var br *bufio.Reader
			for t := range sched {
				if c == nil {
					var err error
					if c, err = dialBench(addr, useTLS); err != nil {
						errs.Add(1)
						continue
					}
					br = bufio.NewReaderSize(c, 32<<10)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err := c.Write(req)
				if err == nil {
					err = readResponse(br)
				}
				if err != nil {
					errs.Add(1)
					c.Close()
					c = nil
					continue
				}
				results[i] = append(results[i], float64(time.Since(t).Microseconds())/1000)
			}
			if c != nil {
				c.Close()
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		t := start.Add(time.Duration(i) * interval)
		if w := time.Until(t); w > 0 {
			time.Sleep(w)
		}
		sched <- t
	}
	close(sched)
	wg.Wait()
	var ms []float64
	for _, r := range results {
		ms = append(ms, r...)
	}
	slices.Sort(ms)
	l := latencies{errs: int(errs.Load())}
	if len(ms) > 0 {
		l.p50, l.p99, l.max = ms[len(ms)/2], ms[len(ms)*99/100], ms[len(ms)-1]
	}
	return l, int64(len(ms))
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
