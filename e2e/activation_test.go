package e2e

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// activationSockets are a daemon's sockets as systemd holds them for
// socket activation: ssh, http and https on ports of 127.0.0.1, open
// until the test ends (d.sockets takes the files); and their addresses.
func activationSockets(t *testing.T) ([]*os.File, []string) {
	var files []*os.File
	var addrs []string
	for range 3 { // ssh, http, https
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close() // the socket stays open through f, as in systemd
		files = append(files, f)
		t.Cleanup(func() { f.Close() })
	}
	return files, addrs
}

// E8: with the sockets held by systemd (socket activation), a restart of
// skiff refuses no connection: requests that arrive while no daemon runs
// wait in the socket's queue and are answered by the next one.
func TestSocketActivationRestart(t *testing.T) {
	t.Parallel()
	files, addrs := activationSockets(t)
	d := &daemon{t: t, dir: t.TempDir(), log: new(bytesBuffer), sockets: files}
	d.data = filepath.Join(d.dir, "data")
	d.start("--git-only")
	if got := []string{d.addr.SSH, d.addr.HTTP, d.addr.HTTPS}; strings.Join(got, " ") != strings.Join(addrs, " ") {
		t.Fatalf("the daemon serves %v, not the sockets it was given %v", got, addrs)
	}

	var answered, failed atomic.Int64
	var lastErr atomic.Value
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", "http://"+addrs[1]+"/", nil)
			req.Host = "nothing-here.skiff.test"
			resp, err := c.Do(req)
			if err != nil {
				failed.Add(1)
				lastErr.Store(time.Now().Format("15:04:05.000000") + " " + err.Error())
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				answered.Add(1)
			} else {
				failed.Add(1)
				lastErr.Store(resp.Status)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	before := answered.Load()
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	d.start("--git-only")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	if failed.Load() != 0 || answered.Load() <= before {
		t.Fatalf("through the restart: %d answered (%d before it), %d failed (last: %v)", answered.Load(), before, failed.Load(), lastErr.Load())
	}
	// SSH is served from its socket too.
	c, err := net.DialTimeout("tcp", addrs[0], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if banner, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Errorf("SSH socket: %q", banner)
	}
}
