// tbapp is the test bed's only program: "pause" is every pod's sandbox
// process (it waits for a signal), "serve" an HTTP app that answers with
// its host name and $GREETING, on $PORT (default 8080), "exit" a program
// that fails at once (status 3).
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		port := os.Getenv("PORT")
		if port == "" {
			port = "8080"
		}
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s\n", host, os.Getenv("GREETING"))
		})
		srv := &http.Server{Addr: ":" + port, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			<-sig
			os.Exit(0)
		}()
		fmt.Fprintln(os.Stderr, "listening on", port)
		fmt.Fprintln(os.Stderr, srv.ListenAndServe())
		os.Exit(1)
	}
	if len(os.Args) > 1 && os.Args[1] == "exit" {
		fmt.Fprintln(os.Stderr, "tbapp: failing on purpose")
		os.Exit(3)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
