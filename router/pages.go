package router

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
)

// The router's own pages say what happened and nothing about the apps it
// serves.
func page(title, text string) []byte {
	return []byte("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + title +
		"</title></head>\n<body style=\"font-family:sans-serif;margin:4em auto;max-width:40em\"><h1>" + title +
		"</h1>\n<p>" + text + "</p></body></html>\n")
}

var (
	pageBadRequest     = page("400 Bad Request", "The request could not be understood.")
	pageNotFound       = page("404 Not Found", "There is no app at this address.")
	pageHeaderTooLarge = page("431 Request Header Fields Too Large", "The request's header is larger than the router accepts.")
	pageBodyTimeout    = page("408 Request Timeout", "The request body stopped arriving.")
	pageMisdirected    = page("421 Misdirected Request", "This connection cannot serve this host.")
	pageTooLarge       = page("413 Content Too Large", "The request body is larger than this app accepts.")
	pageBadGateway     = page("502 Bad Gateway", "The app did not answer properly. Try again in a moment.")
	pageNoInstances    = page("503 Service Unavailable", "The app has no running web instances.")
	pageMaintenance    = page("503 Service Unavailable", "The app is down for maintenance. Try again soon.")
	pageTimeout        = page("504 Gateway Timeout", "The app did not answer in time.")
)

func writePage(w http.ResponseWriter, code int, body []byte) {
	writeBytes(w, code, body)
}

func writeBytes(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Encoding")
	w.WriteHeader(code)
	_, _ = w.Write(body) // to a client that may have gone
}

// newRequestID returns 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
