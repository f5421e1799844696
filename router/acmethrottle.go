package router

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// acmeRetryEvery is how long after a failed validation of a name the CA is
// not asked about it again. certmagic retries after 1, 2, 2, 5 … minutes,
// which would spend a public CA's failed-validation allowance (5 per name
// per hour at Let's Encrypt) within the first quarter hour of a DNS
// mistake; at one attempt per 15 minutes it never runs out.
const acmeRetryEvery = 15 * time.Minute

// acmeThrottle enforces acmeRetryEvery through certmagic's events (an
// error returned for cert_obtaining cancels that attempt before the CA
// hears of it, and certmagic schedules the next), and remembers the last
// failure of each name for `certs <app>`.
type acmeThrottle struct {
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	failed map[string]acmeFailure
}

type acmeFailure struct {
	at  time.Time
	err string
}

func newACMEThrottle(every time.Duration) *acmeThrottle {
	return &acmeThrottle{every: every, now: time.Now, failed: map[string]acmeFailure{}}
}

// onEvent is certmagic's Config.OnEvent.
func (t *acmeThrottle) onEvent(_ context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	if name == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch event {
	case "cert_obtaining":
		if f, ok := t.failed[name]; ok {
			if next := f.at.Add(t.every); t.now().Before(next) {
				return fmt.Errorf("%s failed validation at %s; the CA is asked again after %s", name,
					f.at.UTC().Format(time.TimeOnly), next.UTC().Format(time.TimeOnly))
			}
		}
	case "cert_failed":
		msg := "unknown error"
		if err, ok := data["error"].(error); ok {
			msg = err.Error()
		}
		t.failed[name] = acmeFailure{at: t.now(), err: clipMessage(msg, 300)}
	case "cert_obtained":
		delete(t.failed, name)
	}
	return nil
}

// lastFailure is the name's failure since its last certificate, if any,
// and when the CA will be asked again.
func (t *acmeThrottle) lastFailure(name string) (f acmeFailure, next time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok = t.failed[name]
	return f, f.at.Add(t.every), ok
}

func clipMessage(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
