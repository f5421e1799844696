package router

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/skiffhq/skiff"
)

// certStore keeps uploaded certificates, one per app, in <TLSDir>/uploaded/
// <app-id>.pem (chain then key, 0600) and in memory.
type certStore struct {
	dir   string
	log   *slog.Logger
	mu    sync.RWMutex
	byApp map[string]*tls.Certificate
	def   atomic.Pointer[tls.Certificate] // the default certificate, if any
}

// defaultCertID is the store key of the default certificate (not a valid
// app ID, so no app can take it).
const defaultCertID = "default certificate"

func newCertStore(tlsDir string, log *slog.Logger) (*certStore, error) {
	s := &certStore{dir: filepath.Join(tlsDir, "uploaded"), log: log, byApp: map[string]*tls.Certificate{}}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".pem")
		if !ok || !validID(id) && id != "_default" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err == nil {
			var c *tls.Certificate
			if c, err = loadKeyPair(data, data); err == nil {
				if id == "_default" {
					s.def.Store(c)
				} else {
					s.byApp[id] = c
				}
				continue
			}
		}
		log.Error("uploaded certificate not loaded", "app_id", id, "err", err)
	}
	return s, nil
}

// validID keeps an app ID usable as a file name.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *certStore) get(appID string) *tls.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byApp[appID]
}

func (s *certStore) put(appID string, certPEM, keyPEM []byte) error {
	c, err := loadKeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.Write(certPEM)
	buf.WriteByte('\n')
	buf.Write(keyPEM)
	p := s.file(appID)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("store certificate: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("store certificate: %w", err)
	}
	if appID == defaultCertID {
		s.def.Store(c)
		return nil
	}
	s.mu.Lock()
	s.byApp[appID] = c
	s.mu.Unlock()
	return nil
}

// file is where a certificate is stored; the default one is "_default.pem".
func (s *certStore) file(appID string) string {
	if appID == defaultCertID {
		return filepath.Join(s.dir, "_default.pem")
	}
	return filepath.Join(s.dir, appID+".pem")
}

func (s *certStore) remove(appID string) error {
	if appID == defaultCertID {
		s.def.Store(nil)
	} else {
		s.mu.Lock()
		delete(s.byApp, appID)
		s.mu.Unlock()
	}
	err := os.Remove(s.file(appID))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// SetCertificate stores an uploaded certificate for the app; see skiff.Routes.
func (r *Router) SetCertificate(appID string, bundle []byte) error {
	if !validID(appID) {
		return skiff.Errorf(skiff.EINVALID, "invalid app id")
	}
	a := r.lookupID(appID)
	if a == nil {
		return skiff.Errorf(skiff.ENOTFOUND, "app is not routed")
	}
	certPEM, keyPEM, err := ParseCertBundle(bundle)
	if err != nil {
		return err
	}
	c, err := loadKeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(a.hosts, func(h string) bool { return covers(c, h) }) {
		return skiff.Errorf(skiff.EINVALID, "the certificate (for %s) covers none of the app's domains (%s); add the domain first",
			strings.Join(c.Leaf.DNSNames, ", "), strings.Join(a.hosts, ", "))
	}
	return r.certs.put(appID, certPEM, keyPEM)
}

// SetDefaultCertificate stores the certificate served to clients that send
// no server name or an IP address, and to hosts it covers whose app has no
// certificate of its own (a wildcard for the base domain, typically).
func (r *Router) SetDefaultCertificate(bundle []byte) error {
	certPEM, keyPEM, err := ParseCertBundle(bundle)
	if err != nil {
		return err
	}
	return r.certs.put(defaultCertID, certPEM, keyPEM)
}

// RemoveDefaultCertificate deletes the default certificate. Idempotent.
func (r *Router) RemoveDefaultCertificate() error { return r.certs.remove(defaultCertID) }

// RemoveCertificate deletes the app's uploaded certificate. Idempotent.
func (r *Router) RemoveCertificate(appID string) error {
	if !validID(appID) {
		return skiff.Errorf(skiff.EINVALID, "invalid app id")
	}
	return r.certs.remove(appID)
}

// Certificates describes the certificates the app is served with.
func (r *Router) Certificates(appID string) []skiff.CertInfo {
	var out []skiff.CertInfo
	if c := r.certs.get(appID); c != nil {
		out = append(out, certInfo("uploaded", c))
	}
	if a := r.lookupID(appID); a != nil && r.acme != nil && a.route.ACME {
		out = append(out, r.acme.certInfos(a)...)
	}
	return out
}

func certInfo(source string, c *tls.Certificate) skiff.CertInfo {
	return skiff.CertInfo{Source: source, Names: c.Leaf.DNSNames, Issuer: c.Leaf.Issuer.String(), NotAfter: c.Leaf.NotAfter, Status: "valid"}
}

// covers reports whether the certificate is valid for the host name.
func covers(c *tls.Certificate, host string) bool {
	return c != nil && c.Leaf != nil && c.Leaf.VerifyHostname(host) == nil
}

// tlsConfig is the HTTPS listener's configuration: certificates chosen per
// SNI from the route table, h2 and HTTP/1.1, and the ACME TLS-ALPN protocol.
func (r *Router) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1", "acme-tls/1"},
		GetCertificate: r.getCertificate,
	}
}

var errNoCertificate = errors.New("no certificate for this server name")

// getCertificate serves a certificate only for hosts in the route table: an
// uploaded one when it covers the name, else the ACME one for apps that use
// ACME. Unknown names get no certificate, and never cause an ACME order.
func (r *Router) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.acme != nil && slices.Contains(hello.SupportedProtos, "acme-tls/1") {
		return r.acme.getCertificate(hello) // a CA validating a challenge
	}
	if hello.ServerName == "" || net.ParseIP(hello.ServerName) != nil {
		if c := r.certs.def.Load(); c != nil {
			return c, nil
		}
		return nil, errNoCertificate
	}
	name, ok := skiff.CanonicalHost(hello.ServerName)
	if !ok {
		return nil, errNoCertificate
	}
	a := r.table.Load().lookup(name)
	if a == nil {
		return nil, errNoCertificate
	}
	if c := r.certs.get(a.route.AppID); covers(c, name) {
		return c, nil
	}
	if r.acme != nil && a.route.ACME {
		if c, err := r.acme.getCertificate(hello); err == nil || !covers(r.certs.def.Load(), name) {
			return c, err
		}
	}
	if c := r.certs.def.Load(); covers(c, name) {
		return c, nil
	}
	return nil, errNoCertificate
}

// servedCert returns the certificate a handshake for name got, without
// obtaining one.
func (r *Router) servedCert(name string) *tls.Certificate {
	if net.ParseIP(strings.Trim(name, "[]")) != nil {
		return r.certs.def.Load()
	}
	a := r.table.Load().lookup(name)
	if a == nil {
		return nil
	}
	if c := r.certs.get(a.route.AppID); covers(c, name) {
		return c
	}
	if r.acme != nil && a.route.ACME {
		if c := r.acme.cached(name); c != nil {
			return c
		}
	}
	if c := r.certs.def.Load(); covers(c, name) {
		return c
	}
	return nil
}

// misdirectedOK reports whether a request for host may be served on a
// connection whose SNI was sni: only if the certificate presented for sni
// also covers host (as HTTP/2 connection reuse expects).
func (r *Router) misdirectedOK(sni, host string) bool {
	sni, ok := skiff.CanonicalHost(sni)
	if !ok {
		return false
	}
	if sni == host {
		return true
	}
	return covers(r.servedCert(sni), host)
}

// hasCertFor reports whether the app's host can be served over HTTPS now, so
// that plain HTTP redirects there.
func (r *Router) hasCertFor(a *app, host string) bool {
	if c := r.certs.get(a.route.AppID); covers(c, host) {
		return true
	}
	if a.route.ACME && r.acme != nil && r.acme.cached(host) != nil {
		return true
	}
	return covers(r.certs.def.Load(), host)
}
