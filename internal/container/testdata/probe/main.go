// Command probe runs inside test containers: it reports what the sandbox
// lets it see and do, and misbehaves on request.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe command [args]")
		os.Exit(2)
	}
	arg := func(i int) string {
		if len(os.Args) > i {
			return os.Args[i]
		}
		return ""
	}
	switch os.Args[1] {
	case "status":
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:", "NoNewPrivs:", "Seccomp:"} {
				if strings.HasPrefix(l, k) {
					fmt.Println(strings.Join(strings.Fields(l), " "))
				}
			}
		}
		m, _ := os.ReadFile("/proc/self/uid_map")
		fmt.Println("uid_map: " + strings.Join(strings.Fields(string(m)), " "))
		_, err := os.Stdin.Stat()
		fi, _ := os.Stdout.Stat()
		fmt.Printf("tty: %v %v\n", fi != nil && fi.Mode()&os.ModeCharDevice != 0, err == nil)
	case "syscall32": // getpid through the 32-bit entry; the filter lets it return or kills its thread
		if !has32 {
			fmt.Println("no 32-bit entry")
			os.Exit(2)
		}
		done := make(chan uintptr, 1)
		go func() {
			runtime.LockOSThread()
			done <- syscall32(getpid32)
		}()
		select {
		case r := <-done:
			fmt.Println("32-bit syscall returned", int(r))
		case <-time.After(2 * time.Second):
			fmt.Println("32-bit syscall refused")
		}
	case "winsize": // the terminal's size (rows cols) the moment the process starts
		var ws [4]uint16
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
		if errno != 0 {
			fmt.Println("no terminal:", errno)
			os.Exit(1)
		}
		fmt.Println(ws[0], ws[1])
	case "serve":
		port := os.Getenv("PORT")
		fmt.Println("listening on " + port)
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from %s\n", os.Getenv("SKIFF_PROCESS"))
		})
		http.HandleFunc("/peer", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, r.RemoteAddr)
		})
		http.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
			for _, e := range os.Environ() {
				fmt.Fprintf(w, "%q\n", e)
			}
		})
		srv := &http.Server{Addr: ":" + port, ReadHeaderTimeout: 5 * time.Second}
		if err := srv.ListenAndServe(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	case "connect":
		c, err := net.DialTimeout("tcp", arg(2), time.Second)
		if err != nil {
			fmt.Println("refused:", err)
			os.Exit(1)
		}
		c.Close()
		fmt.Println("connected")
	case "get":
		c := http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get(arg(2))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(resp.Body)
		os.Stdout.Write(b)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(time.Hour)
	case "sleep":
		d, _ := time.ParseDuration(arg(2))
		fmt.Println("sleeping")
		time.Sleep(d)
	case "exit":
		n, _ := strconv.Atoi(arg(2))
		fmt.Println("exiting", n)
		os.Exit(n)
	case "orphans":
		// Fork children that fork a short-lived grandchild each and exit
		// at once: the grandchildren are orphans, and whoever is pid 1
		// must reap them. Then count the zombies of the pid namespace.
		for range 5 {
			c := exec.Command("/proc/self/exe", "spawn", "100ms")
			c.Run()
		}
		time.Sleep(time.Second)
		fmt.Println("zombies:", zombies())
	case "spawn":
		c := exec.Command("/proc/self/exe", "sleep", arg(2))
		c.Start() // never waited for
	case "oom":
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "forkbomb":
		var kids []*exec.Cmd
		for i := range 10000 {
			c := exec.Command("/proc/self/exe", "sleep", "1h")
			if err := c.Start(); err != nil {
				fmt.Printf("fork stopped after %d: %v\n", i, err)
				os.Exit(3)
			}
			kids = append(kids, c)
		}
		fmt.Println("forked 10000")
	case "fill":
		f, err := os.Create(arg(2))
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		buf := make([]byte, 1<<20)
		var n int64
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if err != nil {
				fmt.Printf("wrote %d bytes: %v\n", n, err)
				os.Exit(4)
			}
		}
	case "spew":
		n, _ := strconv.ParseInt(arg(2), 10, 64)
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for i := int64(0); i < n; i += 1024 {
			if _, err := os.Stdout.Write(line); err != nil {
				os.Exit(5)
			}
		}
	case "stdin":
		io.Copy(os.Stdout, os.Stdin)
	case "cat":
		b, err := os.ReadFile(arg(2))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "write":
		if err := os.WriteFile(arg(2), []byte("x"), 0o644); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("written")
	case "echo":
		// A TCP server on PORT that echoes what it reads.
		l, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("listening on " + os.Getenv("PORT"))
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(1)
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	case "hold":
		// One connection to an echo server, a round trip every 100 ms:
		// "up" once the first one passes, "cut: …" and exit 3 when one
		// fails.
		c, err := net.DialTimeout("tcp", arg(2), time.Second)
		if err != nil {
			fmt.Println("refused:", err)
			os.Exit(1)
		}
		buf := make([]byte, 5)
		for i := 0; ; i++ {
			c.SetDeadline(time.Now().Add(time.Second))
			_, err := c.Write([]byte("ping\n"))
			if err == nil {
				_, err = io.ReadFull(c, buf)
			}
			if err != nil {
				fmt.Println("cut:", err)
				os.Exit(3)
			}
			if i == 0 {
				fmt.Println("up")
			}
			time.Sleep(100 * time.Millisecond)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command")
		os.Exit(2)
	}
}

// zombies counts the processes in state Z.
func zombies() int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == "Z" {
			n++
		}
	}
	return n
}
