package skiff_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

func mustTime(t *testing.T, s string, loc *time.Location) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleNext(t *testing.T) {
	for _, c := range []struct {
		spec, after string
		want        []string // the next runs, in order
	}{
		{"* * * * *", "2026-03-01 10:00", []string{"2026-03-01 10:01", "2026-03-01 10:02"}},
		{"*/5 * * * *", "2026-03-01 10:03", []string{"2026-03-01 10:05", "2026-03-01 10:10"}},
		{"*/15 9-10 * * *", "2026-03-01 10:50", []string{"2026-03-02 09:00", "2026-03-02 09:15"}},
		{"0 0 1 1 *", "2026-06-01 00:00", []string{"2027-01-01 00:00"}},
		{"@yearly", "2026-06-01 00:00", []string{"2027-01-01 00:00"}},
		{"@hourly", "2026-06-01 00:59", []string{"2026-06-01 01:00", "2026-06-01 02:00"}},
		{"@daily", "2026-06-01 00:00", []string{"2026-06-02 00:00"}},
		{"@weekly", "2026-06-01 00:00", []string{"2026-06-07 00:00"}}, // a Monday; Sunday next
		{"0 12 * * mon-fri", "2026-06-05 12:00", []string{"2026-06-08 12:00"}},
		{"0 12 * * 7", "2026-06-01 00:00", []string{"2026-06-07 12:00"}},
		{"0 0 29 2 *", "2026-01-01 00:00", []string{"2028-02-29 00:00", "2032-02-29 00:00"}},
		{"0 0 29 2 *", "2096-03-01 00:00", []string{"2104-02-29 00:00"}}, // 2100 is no leap year
		{"0 0 31 * *", "2026-04-01 00:00", []string{"2026-05-31 00:00", "2026-07-31 00:00"}},
		// Day of month and day of week both restricted: either matches.
		{"0 0 13 * fri", "2026-02-01 00:00", []string{"2026-02-06 00:00", "2026-02-13 00:00", "2026-02-20 00:00"}},
		{"30 4 1,15 * 5", "2026-05-01 04:30", []string{"2026-05-08 04:30", "2026-05-15 04:30"}},
		{"10/20 * * JAN *", "2026-12-31 23:59", []string{"2027-01-01 00:10", "2027-01-01 00:30", "2027-01-01 00:50"}},
		{"0-10/5 1 * * *", "2026-01-01 00:00", []string{"2026-01-01 01:00", "2026-01-01 01:05", "2026-01-01 01:10", "2026-01-02 01:00"}},
	} {
		s, err := skiff.ParseSchedule(c.spec)
		if err != nil {
			t.Errorf("%s: %v", c.spec, err)
			continue
		}
		at := mustTime(t, c.after, time.UTC)
		for _, w := range c.want {
			at = s.Next(at, nil)
			if got := at.Format("2006-01-02 15:04"); got != w {
				t.Errorf("%s: next is %s, want %s", c.spec, got, w)
				break
			}
		}
	}
}

func TestScheduleNextSeconds(t *testing.T) {
	s, _ := skiff.ParseSchedule("* * * * *")
	at := time.Date(2026, 3, 1, 10, 0, 59, 999, time.UTC)
	if got := s.Next(at, nil); !got.Equal(time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC)) {
		t.Errorf("next after 10:00:59 is %v", got)
	}
}

// TestScheduleDST checks Vixie cron's rule across daylight-saving changes:
// a job at a fixed hour runs once a day, every-hour jobs follow the clock.
func TestScheduleDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	// 2026-03-08 02:00 EST jumps to 03:00 EDT; 2026-11-01 02:00 EDT goes back to 01:00 EST.
	at := func(s string) time.Time { return mustTime(t, s, ny) }
	s, _ := skiff.ParseSchedule("30 2 * * *")
	if got := s.Next(at("2026-03-08 00:00"), ny); !got.Equal(at("2026-03-08 03:00")) {
		t.Errorf("a 02:30 job on the day 02:30 does not exist ran at %v; want 03:00 EDT", got)
	}
	if got := s.Next(at("2026-03-08 03:00"), ny); !got.Equal(at("2026-03-09 02:30")) {
		t.Errorf("after the jump, the job next runs at %v; want the next day", got)
	}
	s, _ = skiff.ParseSchedule("30 1 * * *")
	first := s.Next(at("2026-11-01 00:00"), ny)
	if _, off := first.Zone(); first.Hour() != 1 || off != -4*3600 {
		t.Errorf("01:30 on the day it happens twice ran first at %v", first)
	}
	if got := s.Next(first, ny); got.Day() != 2 || got.Hour() != 1 || got.Minute() != 30 {
		t.Errorf("01:30 ran again at %v, in the repeated hour", got)
	}
	// An hourly job follows the clock through the repeated hour.
	s, _ = skiff.ParseSchedule("0 * * * *")
	n := 0
	for x := at("2026-11-01 00:00"); x.Before(at("2026-11-01 04:00")); x = s.Next(x, ny) {
		n++
	}
	if n != 5 { // the start (00:00), then 01:00 EDT, 01:00 EST, 02:00, 03:00
		t.Errorf("%d hourly runs from 00:00 to 04:00 on the day of the change; want 5", n)
	}
	s, _ = skiff.ParseSchedule("0 12 * * *")
	if got := s.Next(at("2026-03-08 00:00"), ny); got.Hour() != 12 || got.Day() != 8 {
		t.Errorf("noon on the change day: %v", got)
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, bad := range []string{
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *",
		"* * * * 8", "*/0 * * * *", "*/61 * * * *", "5-1 * * * *", "a * * * *", "* * * foo *", "1,,2 * * * *",
		"@every 1h", "@reboot", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "- * * * *", "+1 * * * *", "1-2-3 * * * *",
		strings.Repeat("1,", 200) + "1 * * * *",
	} {
		if _, err := skiff.ParseSchedule(bad); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%q: %v", bad, err)
		}
	}
	_, err := skiff.ParseSchedule("61 * * * *")
	if msg := skiff.ErrorMessage(err); !strings.Contains(msg, "minute") || !strings.Contains(msg, "0-59") {
		t.Errorf("the error does not say which field and what is allowed: %s", msg)
	}
	for _, good := range []string{"  */5   *  * * *  ", "0 0 * * sun", "0 0 * * SUN-SAT", "0 0 29 2 *", "0 0 30 2 mon", "@MIDNIGHT"} {
		if _, err := skiff.ParseSchedule(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	if s, _ := skiff.ParseSchedule("  */5   *  * * *  "); s.String() != "*/5 * * * *" {
		t.Errorf("String() = %q", s.String())
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "0 0 29 2 *", "@daily", "1-5/2,7 */3 1,15 jan-mar mon-fri", "0 0 13 * fri"} {
		f.Add(s)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := skiff.ParseSchedule(spec)
		if err != nil {
			if skiff.ErrorCode(err) != skiff.EINVALID {
				t.Fatalf("%q: %v", spec, err)
			}
			return
		}
		// Whatever parses fires, at whole minutes, always later.
		at := start
		for range 3 {
			next := s.Next(at, nil)
			if next.IsZero() || !next.After(at) || next.Second() != 0 || next.Nanosecond() != 0 {
				t.Fatalf("%q: next after %v is %v", spec, at, next)
			}
			at = next
		}
		if again, err := skiff.ParseSchedule(s.String()); err != nil || again.Next(start, nil) != s.Next(start, nil) {
			t.Fatalf("%q does not round-trip through %q: %v", spec, s.String(), err)
		}
	})
}
