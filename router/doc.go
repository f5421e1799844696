// Package router owns skiff's public gateway: the HTTP and HTTPS listeners
// (HTTP/1.1 read by the router's own strict parser and the everyday
// requests proxied on a fast path of its own, h1*.go; the rest by net/http;
// HTTP/2 by x/net/http2 behind h2guard.go), routing by Host to an app's
// instances, balancing and passive health, forwarded headers, compression,
// per-app access logs, certificates (uploaded and ACME via certmagic),
// maintenance pages, and the health-gated switch that makes deploys
// zero-downtime (new backends must answer before one atomic swap of the
// route table; old ones drain before the caller stops them).
//
// The route table is an immutable snapshot published through an
// atomic.Pointer: a request reads one consistent table without locks, and a
// change builds a new table and swaps it in.
package router
