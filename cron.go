package skiff

import (
	"strconv"
	"strings"
	"time"
)

// A cron schedule in the five-field form of crontab(5), the form Dokku's
// app.json "cron" entries and Heroku Scheduler's users write: minute, hour,
// day of month, month, day of week, each a comma-separated list of `*`,
// `N`, `N-M`, each optionally stepped (`*/5`, `1-30/2`, `10/15` meaning
// 10-max/15); months and weekdays also by name (jan, mon); weekday 7 is
// Sunday like 0. The macros @yearly (@annually), @monthly, @weekly,
// @daily (@midnight) and @hourly stand for their five fields. When both
// the day of month and the day of week are restricted, a day matching
// either one matches (as in Vixie cron).

// MaxScheduleLen caps a schedule's length; real ones are a few dozen bytes.
const MaxScheduleLen = 256

// Schedule is a parsed cron schedule. The zero value matches nothing.
type Schedule struct {
	spec                      string
	minute, hour, dom         uint64 // bit n set: value n matches
	month, dow                uint64
	domStar, dowStar, hourAll bool
}

var scheduleMacros = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var cronFields = [5]cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// ParseSchedule parses a cron schedule. A malformed one, or one that can
// never fire (like 0 0 30 2 *), is an EINVALID error saying which field is
// wrong and what is allowed.
func ParseSchedule(spec string) (*Schedule, error) {
	spec = strings.TrimSpace(spec)
	if len(spec) > MaxScheduleLen {
		return nil, Errorf(EINVALID, "cron schedule is longer than %d characters", MaxScheduleLen)
	}
	fields := strings.Fields(spec)
	if len(fields) == 1 && strings.HasPrefix(fields[0], "@") {
		m, ok := scheduleMacros[strings.ToLower(fields[0])]
		if !ok {
			return nil, Errorf(EINVALID, "cron schedule %s: unknown macro; use @yearly, @monthly, @weekly, @daily or @hourly, or five fields like \"*/5 * * * *\"", quoteForUser(spec))
		}
		fields = strings.Fields(m)
	}
	if len(fields) != 5 {
		return nil, Errorf(EINVALID, "cron schedule %s has %d fields; it needs five (minute hour day-of-month month day-of-week), like \"*/5 * * * *\"", quoteForUser(spec), len(fields))
	}
	s := &Schedule{spec: strings.Join(strings.Fields(spec), " ")}
	sets := [5]*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, f := range fields {
		set, err := cronFields[i].parse(f)
		if err != nil {
			return nil, Errorf(EINVALID, "cron schedule %s: %s", quoteForUser(spec), err.Error())
		}
		*sets[i] = set
	}
	if s.dow&(1<<7) != 0 {
		s.dow = s.dow&^(1<<7) | 1 // 7 is Sunday
	}
	s.domStar = strings.HasPrefix(fields[2], "*")
	s.dowStar = strings.HasPrefix(fields[4], "*")
	s.hourAll = s.hour == 1<<24-1
	if !s.feasible() {
		return nil, Errorf(EINVALID, "cron schedule %s never runs: no month has that day", quoteForUser(spec))
	}
	return s, nil
}

// parse reads one field into a bit set.
func (f cronField) parse(field string) (uint64, error) {
	var set uint64
	for part := range strings.SplitSeq(field, ",") {
		rng, stepStr, stepped := strings.Cut(part, "/")
		step := 1
		if stepped {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 || n > f.max+1 {
				return 0, &Error{Code: EINVALID, Message: f.name + " step " + quoteForUser(stepStr) + " must be a number from 1 to " + strconv.Itoa(f.max+1)}
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
		case rng == "":
			return 0, f.errorf(part)
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = f.value(b); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, &Error{Code: EINVALID, Message: f.name + " range " + quoteForUser(rng) + " runs backwards"}
				}
			} else if stepped {
				hi = f.max // 10/15 is 10-max/15
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max || strings.HasPrefix(s, "+") {
		return 0, f.errorf(s)
	}
	return n, nil
}

func (f cronField) errorf(s string) error {
	allowed := strconv.Itoa(f.min) + "-" + strconv.Itoa(f.max)
	if f.names != nil {
		allowed += " or " + f.names[0] + "-" + f.names[len(f.names)-1]
	}
	return &Error{Code: EINVALID, Message: f.name + " " + quoteForUser(s) + " is not valid: use *, a value (" + allowed + "), a range a-b, a list a,b or a step */n"}
}

// daysIn is the most days month m (1-12) can have.
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// feasible reports whether some date matches: only a day of month that no
// chosen month has (with any day of week) can never run.
func (s *Schedule) feasible() bool {
	if s.domStar || !s.dowStar {
		return true
	}
	for m := 1; m <= 12; m++ {
		if s.month&(1<<m) != 0 && s.dom&(1<<(daysIn[m]+1)-1) != 0 {
			return true
		}
	}
	return false
}

// String returns the schedule as written, with its spacing normalized.
func (s *Schedule) String() string { return s.spec }

// dayMatches reports whether the calendar date of t (in its location)
// matches the month and day fields.
func (s *Schedule) dayMatches(t time.Time) bool {
	if s.month&(1<<int(t.Month())) == 0 {
		return false
	}
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	switch {
	case s.domStar && s.dowStar:
		return true
	case s.domStar:
		return dow
	case s.dowStar:
		return dom
	}
	return dom || dow
}

func (s *Schedule) timeMatches(t time.Time) bool {
	return s.hour&(1<<t.Hour()) != 0 && s.minute&(1<<t.Minute()) != 0
}

// scheduleHorizon bounds Next's search, in days: the rarest schedule
// ParseSchedule accepts (Feb 29) can be 8 years from one run to the next.
const scheduleHorizon = 9 * 366

// Next returns the first time after `after`, at a whole minute, when the
// schedule fires in loc (UTC when nil); the zero time if it never does.
// Across a daylight-saving change in loc, a job at a fixed hour runs once:
// a run whose wall-clock time is skipped runs at the first minute after the
// jump, and a repeated wall-clock hour does not run it again (Vixie cron's
// rule). Jobs whose hour is `*` just follow the clock.
func (s *Schedule) Next(after time.Time, loc *time.Location) time.Time {
	if s == nil || s.minute == 0 {
		return time.Time{}
	}
	if loc == nil {
		loc = time.UTC
	}
	t := after.In(loc).Truncate(time.Minute).Add(time.Minute)
	for range scheduleHorizon {
		y, m, d := t.Date()
		dayEnd := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
		if !s.dayMatches(t) {
			t = dayEnd
			continue
		}
		for t.Before(dayEnd) {
			if s.hour&(1<<t.Hour()) == 0 && !s.fixedHourGap(t) {
				next := t.Add(time.Duration(60-t.Minute()) * time.Minute) // to the next hour
				if _, o1 := t.Zone(); sameOffset(next, o1) {
					t = next
					continue
				}
				// The clocks change within the hour: go minute by minute, so
				// that fixedHourGap sees the jump.
			}
			if (s.timeMatches(t) && !s.repeatedWallTime(t)) || s.fixedHourGap(t) {
				return t
			}
			t = t.Add(time.Minute)
		}
		t = dayEnd
	}
	return time.Time{}
}

// repeatedWallTime reports whether t's wall-clock minute already happened
// once, an hour (or 30 minutes, or two hours) earlier, when the clocks went
// back; only for jobs at fixed hours.
func (s *Schedule) repeatedWallTime(t time.Time) bool {
	if s.hourAll {
		return false
	}
	for _, d := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if sameWallMinute(t.Add(-d), t) {
			return true
		}
	}
	return false
}

// fixedHourGap reports whether the clocks jumped forward just before t,
// over a wall-clock minute at which a fixed-hour job was due.
func (s *Schedule) fixedHourGap(t time.Time) bool {
	if s.hourAll {
		return false
	}
	prev := t.Add(-time.Minute)
	_, po := prev.Zone()
	_, to := t.Zone()
	if to <= po {
		return false
	}
	// The wall-clock minutes between prev and t never happened.
	w := time.Date(prev.Year(), prev.Month(), prev.Day(), prev.Hour(), prev.Minute(), 0, 0, time.UTC)
	end := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
	for w = w.Add(time.Minute); w.Before(end); w = w.Add(time.Minute) {
		if s.dayMatches(w) && s.timeMatches(w) {
			return true
		}
	}
	return false
}

func sameOffset(t time.Time, offset int) bool {
	_, o := t.Zone()
	return o == offset
}

func sameWallMinute(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute()
}
