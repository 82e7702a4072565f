package jobs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cron is a parsed 5-field cron schedule: minute hour day-of-month month
// day-of-week, as Vixie cron and Kubernetes CronJob read them. Fields take
// *, N, A-B, lists (A,B) and steps (*/N, A-B/N); months and days of week
// take names (jan, mon); 7 is Sunday too. When both day fields are
// restricted a day matching either matches (cron's rule). Macros:
// @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
type Cron struct {
	minute, hour, dom, month, dow uint64
	domStar, dowStar              bool
}

var cronMacros = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

var monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
var dowNames = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

// ParseCron parses a schedule; the error names the bad field.
func ParseCron(s string) (*Cron, error) {
	s = strings.TrimSpace(s)
	if m, ok := cronMacros[strings.ToLower(s)]; ok {
		s = m
	} else if strings.HasPrefix(s, "@") {
		return nil, fmt.Errorf("unknown macro %q (want @yearly, @monthly, @weekly, @daily or @hourly)", s)
	}
	f := strings.Fields(s)
	if len(f) != 5 {
		return nil, fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(f))
	}
	var c Cron
	var err error
	if c.minute, err = cronField(f[0], 0, 59, nil); err != nil {
		return nil, fmt.Errorf("minute: %w", err)
	}
	if c.hour, err = cronField(f[1], 0, 23, nil); err != nil {
		return nil, fmt.Errorf("hour: %w", err)
	}
	if c.dom, err = cronField(f[2], 1, 31, nil); err != nil {
		return nil, fmt.Errorf("day-of-month: %w", err)
	}
	if c.month, err = cronField(f[3], 1, 12, monthNames); err != nil {
		return nil, fmt.Errorf("month: %w", err)
	}
	if c.dow, err = cronField(f[4], 0, 7, dowNames); err != nil {
		return nil, fmt.Errorf("day-of-week: %w", err)
	}
	if c.dow&(1<<7) != 0 {
		c.dow |= 1
	}
	c.domStar = f[2] == "*" || f[2] == "?"
	c.dowStar = f[4] == "*" || f[4] == "?"
	return &c, nil
}

func cronField(s string, lo, hi int, names map[string]int) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(s, ",") {
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n < 1 || n > hi {
				return 0, fmt.Errorf("bad step %q", stepS)
			}
			step = n
		}
		a, b := lo, hi
		switch {
		case rng == "*" || rng == "?":
		default:
			as, bs, isRange := strings.Cut(rng, "-")
			var err error
			if a, err = cronValue(as, lo, hi, names); err != nil {
				return 0, err
			}
			b = a
			if isRange {
				if b, err = cronValue(bs, lo, hi, names); err != nil {
					return 0, err
				}
				if b < a {
					return 0, fmt.Errorf("range %q ends before it starts", rng)
				}
			} else if hasStep {
				b = hi
			}
		}
		for v := a; v <= b; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

func cronValue(s string, lo, hi int, names map[string]int) (int, error) {
	if v, ok := names[strings.ToLower(s)]; ok {
		return v, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want %d to %d, got %q", lo, hi, s)
	}
	return n, nil
}

func (c *Cron) dayMatches(t time.Time) bool {
	if c.month&(1<<int(t.Month())) == 0 {
		return false
	}
	dom := c.dom&(1<<t.Day()) != 0
	dow := c.dow&(1<<int(t.Weekday())) != 0
	switch {
	case c.domStar && c.dowStar:
		return true
	case c.domStar:
		return dow
	case c.dowStar:
		return dom
	default:
		return dom || dow
	}
}

// maxSearchDays bounds Next's search (a schedule like "0 0 30 2 *" never
// fires): a leap day is at most 8 years away.
const maxSearchDays = 366*8 + 2

// errNever is Next's answer for a schedule that never fires.
var errNever = errors.New("schedule never fires")

// Next returns the first fire time strictly after t in loc, by wall
// clock. A fire whose wall time does not exist (skipped by a DST change)
// happens at the first instant after the gap, as Vixie cron runs the
// jobs of a skipped hour; a wall time that happens twice (clocks set
// back) fires once, at its first occurrence. It returns an error for a
// schedule that never fires (Feb 30).
func (c *Cron) Next(t time.Time, loc *time.Location) (time.Time, error) {
	lt := t.In(loc)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 12, 0, 0, 0, loc)
	for i := 0; i < maxSearchDays; i++ {
		d := day.AddDate(0, 0, i)
		if !c.dayMatches(d) {
			continue
		}
		var best time.Time
		for h := 0; h < 24; h++ {
			if c.hour&(1<<h) == 0 {
				continue
			}
			for m := 0; m < 60; m++ {
				if c.minute&(1<<m) == 0 {
					continue
				}
				ft := wallTime(d.Year(), d.Month(), d.Day(), h, m, loc)
				if ft.After(t) && (best.IsZero() || ft.Before(best)) {
					best = ft
				}
			}
		}
		if !best.IsZero() {
			return best, nil
		}
	}
	return time.Time{}, errNever
}

// wallTime is the first instant the clocks of loc show y-mo-d h:m (the
// instant right after the gap when they never do).
func wallTime(y int, mo time.Month, d, h, m int, loc *time.Location) time.Time {
	t := time.Date(y, mo, d, h, m, 0, 0, loc)
	// time.Date may pick the second of two instants with this wall time
	// (clocks set back): an hour earlier shows the same wall time then.
	if e := t.Add(-time.Hour); e.In(loc).Hour() == h && e.In(loc).Minute() == m && e.In(loc).Day() == d {
		return e
	}
	if t.In(loc).Hour() != h || t.In(loc).Minute() != m {
		// In a gap: the first instant after it is the start of the new
		// offset's hour.
		_, end := t.ZoneBounds()
		if !end.IsZero() && end.After(t) {
			return end
		}
		s, _ := t.ZoneBounds()
		return s
	}
	return t
}

// Fires returns the fire times in (after, until], at most limit of them
// (the earliest).
func (c *Cron) Fires(after, until time.Time, loc *time.Location, limit int) []time.Time {
	var out []time.Time
	t := after
	for len(out) < limit {
		n, err := c.Next(t, loc)
		if err != nil || n.After(until) {
			break
		}
		out = append(out, n)
		t = n
	}
	return out
}

// Due is what a schedule asks for at a moment.
type Due struct {
	// Fire is the scheduled time of the fire to start now (zero: none).
	Fire time.Time
	// Skipped is the latest missed fire not started because it is older
	// than the starting deadline (zero: none): record it as the last fire
	// so that it is not considered again.
	Skipped time.Time
	// Missed counts fires between last and now that will never run
	// (only the latest missed fire runs, as in Kubernetes).
	Missed int
	// Next is the fire after now: when to look again.
	Next time.Time
}

// DueAt decides, at now, which fire of the schedule is due given the
// scheduled time of the last fire recorded (or the job's creation time
// when it never fired). Only the latest fire in (last, now] is due; when
// startingDeadline > 0 and it is older than that, it is Skipped instead.
// Pure: the clock is the now parameter.
func (c *Cron) DueAt(last, now time.Time, loc *time.Location, startingDeadline time.Duration) Due {
	var d Due
	if n, err := c.Next(now, loc); err == nil {
		d.Next = n
	}
	if !last.Before(now) {
		return d
	}
	// The latest fire in (last, now]: search windows that grow, so that a
	// long outage does not walk every minute since it began.
	var latest time.Time
	count := 0
	for _, w := range []time.Duration{time.Hour, 48 * time.Hour, 40 * 24 * time.Hour, 400 * 24 * time.Hour, 9 * 366 * 24 * time.Hour} {
		start := now.Add(-w)
		if start.Before(last) {
			start = last
		}
		fires := c.Fires(start, now, loc, 100000)
		if len(fires) > 0 {
			latest = fires[len(fires)-1]
			count = len(fires)
			if start.Equal(last) {
				break
			}
			// Fires before the window are missed too; count them only
			// roughly (they never run either way).
			count += len(c.Fires(last, start, loc, 1000))
			break
		}
		if start.Equal(last) {
			break
		}
	}
	if latest.IsZero() {
		return d
	}
	d.Missed = count - 1
	if startingDeadline > 0 && now.Sub(latest) > startingDeadline {
		d.Skipped = latest
		d.Missed = count
		return d
	}
	d.Fire = latest
	return d
}
