package jobs

import (
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestCron_Next(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	utc := time.UTC
	cases := []struct {
		name, spec string
		loc        *time.Location
		after      string // RFC3339
		want       []string
	}{
		{"every 15 min", "*/15 * * * *", utc, "2026-01-01T10:07:00Z", []string{"2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z"}},
		{"hourly", "@hourly", utc, "2026-01-01T10:00:00Z", []string{"2026-01-01T11:00:00Z"}},
		{"weekday names", "30 9 * * mon-fri", utc, "2026-01-02T10:00:00Z", []string{"2026-01-05T09:30:00Z"}}, // Fri → Mon
		{"dom or dow", "0 0 13 * fri", utc, "2026-02-01T00:00:00Z", []string{"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z"}},
		{"leap day", "0 0 29 2 *", utc, "2026-03-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"sunday as 7", "0 0 * * 7", utc, "2026-01-01T00:00:00Z", []string{"2026-01-04T00:00:00Z"}},
		// US spring forward 2026-03-08: 02:00 EST → 03:00 EDT. 02:30 does
		// not exist: it fires at 03:00 EDT (07:00Z), once.
		{"spring gap", "30 2 * * *", ny, "2026-03-07T12:00:00Z", []string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"spring hourly", "0 * * * *", ny, "2026-03-08T05:30:00Z", []string{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}},
		// Fall back 2026-11-01: 02:00 EDT → 01:00 EST. 01:30 happens twice;
		// it fires once, at the first (05:30Z).
		{"fall twice", "30 1 * * *", ny, "2026-10-31T12:00:00Z", []string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"daily local", "@daily", ny, "2026-01-01T12:00:00Z", []string{"2026-01-02T05:00:00Z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCron(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			at, _ := time.Parse(time.RFC3339, tc.after)
			for _, w := range tc.want {
				n, err := c.Next(at, tc.loc)
				if err != nil {
					t.Fatal(err)
				}
				if got := n.UTC().Format(time.RFC3339); got != w {
					t.Fatalf("Next(%s) = %s, want %s", at.UTC().Format(time.RFC3339), got, w)
				}
				at = n
			}
		})
	}
}

func TestCron_NeverFires(t *testing.T) {
	c, err := ParseCron("0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC); err == nil {
		t.Fatal("Feb 30 fired")
	}
}

func TestParseCron_Errors(t *testing.T) {
	for spec, want := range map[string]string{
		"* * * *":     "want 5 fields (minute hour day-of-month month day-of-week), got 4",
		"60 * * * *":  `minute: want 0 to 59, got "60"`,
		"* 5-2 * * *": `hour: range "5-2" ends before it starts`,
		"* * * foo *": `month: want 1 to 12, got "foo"`,
		"*/0 * * * *": `minute: bad step "0"`,
		"@every 5m":   `unknown macro "@every 5m" (want @yearly, @monthly, @weekly, @daily or @hourly)`,
		"* * 0 * *":   `day-of-month: want 1 to 31, got "0"`,
		"* * * * 8":   `day-of-week: want 0 to 7, got "8"`,
	} {
		_, err := ParseCron(spec)
		if err == nil || err.Error() != want {
			t.Errorf("ParseCron(%q) = %v, want %q", spec, err, want)
		}
	}
}

func TestCron_DueAt(t *testing.T) {
	c, _ := ParseCron("*/10 * * * *")
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	// Nothing due before the next fire.
	if d := c.DueAt(base, base.Add(5*time.Minute), time.UTC, 0); !d.Fire.IsZero() || !d.Next.Equal(base.Add(10*time.Minute)) {
		t.Fatalf("early: %+v", d)
	}
	// Exactly at the fire.
	if d := c.DueAt(base, base.Add(10*time.Minute), time.UTC, 0); !d.Fire.Equal(base.Add(10 * time.Minute)) {
		t.Fatalf("on time: %+v", d)
	}
	// Down for 3 days: only the latest missed fire runs.
	now := base.Add(72*time.Hour + 3*time.Minute)
	d := c.DueAt(base, now, time.UTC, 0)
	if !d.Fire.Equal(base.Add(72*time.Hour)) || d.Missed == 0 {
		t.Fatalf("after outage: %+v", d)
	}
	// With a starting deadline of 1 minute it is skipped.
	d = c.DueAt(base, now, time.UTC, time.Minute)
	if !d.Fire.IsZero() || !d.Skipped.Equal(base.Add(72*time.Hour)) {
		t.Fatalf("deadline: %+v", d)
	}
	// A fire already recorded is never due again.
	if d := c.DueAt(base.Add(10*time.Minute), base.Add(12*time.Minute), time.UTC, 0); !d.Fire.IsZero() {
		t.Fatalf("refired: %+v", d)
	}
}
