package staticserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Main runs the server until ctx ends, then drains for up to ten seconds.
// Usage: skiff-static --root DIR [--addr :PORT] [--fallback FILE]; the
// address defaults to $PORT, and FILE (a single-page app's index.html)
// answers paths that have no file (see Handler.Fallback).
func Main(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	root := fl.String("root", "", "directory to serve (required)")
	addr := fl.String("addr", "", "listen address (default :$PORT, or :8080 without PORT)")
	fallback := fl.String("fallback", "", "file that answers paths with no file and no extension (a single-page app's index.html)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *root == "" || fl.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: %s --root DIR [--addr ADDR] [--fallback FILE]\n", name)
		return 2
	}
	if *addr == "" {
		a, err := Addr(os.Getenv("PORT"))
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 2
		}
		*addr = a
	}
	h, err := New(*root)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer func() { _ = h.Close() }()
	h.Fallback = strings.TrimPrefix(*fallback, "/")
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: serving %s on %s\n", name, *root, l.Addr())
	if err := Serve(ctx, l, h); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// Serve serves h on l until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
