package router

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
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
// failure of each name for `certs <app>`. The failures are kept in a file
// (path), so a restart of the daemon does not reset the spacing.
type acmeThrottle struct {
	every time.Duration
	now   func() time.Time
	path  string // "" keeps them in memory only

	mu     sync.Mutex
	failed map[string]acmeFailure
}

type acmeFailure struct {
	At  time.Time `json:"at"`
	Err string    `json:"error"`
}

func newACMEThrottle(every time.Duration, path string) *acmeThrottle {
	t := &acmeThrottle{every: every, now: time.Now, path: path, failed: map[string]acmeFailure{}}
	if path != "" {
		if data, err := os.ReadFile(path); err == nil {
			if json.Unmarshal(data, &t.failed) != nil {
				t.failed = map[string]acmeFailure{} // unreadable: start afresh
			}
		}
	}
	return t
}

// save writes the failures; called with t.mu held. A failure to write only
// loses the spacing across a restart.
func (t *acmeThrottle) save() {
	if t.path == "" {
		return
	}
	data, err := json.Marshal(t.failed)
	if err != nil {
		return
	}
	tmp := t.path + ".tmp"
	// Best effort: without the file a restart only forgets the waits.
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		_ = os.Rename(tmp, t.path)
	}
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
			if next := f.At.Add(t.every); t.now().Before(next) {
				return fmt.Errorf("%s failed validation at %s; the CA is asked again after %s", name,
					f.At.UTC().Format(time.TimeOnly), next.UTC().Format(time.TimeOnly))
			}
		}
	case "cert_failed":
		msg := "unknown error"
		if err, ok := data["error"].(error); ok {
			msg = err.Error()
		}
		t.failed[name] = acmeFailure{At: t.now(), Err: clipMessage(msg, 300)}
		t.save()
	case "cert_obtained":
		if _, ok := t.failed[name]; ok {
			delete(t.failed, name)
			t.save()
		}
	}
	return nil
}

// lastFailure is the name's failure since its last certificate, if any,
// and when the CA will be asked again.
func (t *acmeThrottle) lastFailure(name string) (f acmeFailure, next time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok = t.failed[name]
	return f, f.At.Add(t.every), ok
}

func clipMessage(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
