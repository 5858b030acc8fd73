package cron_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/cron"
	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newYork(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestSyntax(t *testing.T) {
	ny := newYork(t)
	from := at(t, time.UTC, "2024-01-01 10:20:30") // a Monday
	for _, tc := range []struct {
		expr string
		opts []cron.Option
		want string // in UTC
	}{
		{"*/15 * * * *", nil, "2024-01-01 10:30:00"},
		{"0 9 * * MON-FRI", nil, "2024-01-02 09:00:00"},
		{"30 * * * * *", nil, "2024-01-01 10:21:30"}, // six fields: seconds first
		{"@hourly", nil, "2024-01-01 11:00:00"},
		{"@daily", nil, "2024-01-02 00:00:00"},
		{"@weekly", nil, "2024-01-07 00:00:00"},
		{"@every 90m", nil, "2024-01-01 11:50:30"},
		{"0 9 * * *", []cron.Option{cron.WithLocation(ny)}, "2024-01-01 14:00:00"},
		{"CRON_TZ=America/New_York 0 9 * * *", nil, "2024-01-01 14:00:00"},
		{"CRON_TZ=UTC 0 9 * * *", []cron.Option{cron.WithLocation(ny)}, "2024-01-02 09:00:00"},
		{"0 9 * * *", []cron.Option{cron.WithLocation(time.FixedZone("UTC+2", 2*3600))}, "2024-01-02 07:00:00"},
		{"0 0 15 * FRI", nil, "2024-01-05 00:00:00"}, // day of month OR day of week
	} {
		s, err := cron.Parse(tc.expr, tc.opts...)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		if got := s.Next(from).UTC().Format("2006-01-02 15:04:05"); got != tc.want {
			t.Errorf("Parse(%q).Next = %s, want %s", tc.expr, got, tc.want)
		}
	}
}

func TestErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"0 25 * * *", `field 2 (hour) "25"`},
		{"61 * * * *", `field 1 (minute) "61"`},
		{"* * 32 * *", `field 3 (day-of-month) "32"`},
		{"* * * FOO *", `field 4 (month) "FOO"`},
		{"* * * * 9", `field 5 (day-of-week) "9"`},
		{"70 * * * * *", `field 1 (second) "70"`},
		{"CRON_TZ=Mars/Olympus 0 9 * * *", "time zone CRON_TZ=Mars/Olympus"},
		{"* * *", `cron: "* * *"`},
		{"@fortnightly", `cron: "@fortnightly"`},
	} {
		_, err := cron.Parse(tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.expr, err, tc.want)
		}
	}
	if _, err := cron.Parse("* * * * *", nil); err == nil || err.Error() != "cron: nil Option" {
		t.Errorf("a nil Option: %v", err)
	}
	if _, err := cron.Parse("* * * * *", cron.WithLocation(nil)); err == nil || !strings.Contains(err.Error(), "WithLocation(nil)") {
		t.Errorf("WithLocation(nil): %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*/15 * * * *", "0 9 * * MON-FRI", "@hourly", "CRON_TZ=UTC 1 2 3 4 5", "1-5/2 * * * * *"} {
		f.Add(s)
	}
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := cron.Parse(expr)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cron: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		if n := s.Next(from); !n.IsZero() && !n.After(from) {
			t.Fatalf("Parse(%q).Next(%v) = %v, not after", expr, from, n)
		}
	})
}

// TestDaylightSaving runs a worker through both of New York's 2024 changes:
// on 10 March 02:00 jumps to 03:00, on 3 November 02:00 goes back to 01:00.
func TestDaylightSaving(t *testing.T) {
	ny := newYork(t)
	for _, tc := range []struct {
		name, expr, from string
		days             int
		want             []string // local times of the runs
	}{
		{"spring: the skipped 02:30 runs at 03:30", "30 2 * * *", "2024-03-08 12:00:00", 3,
			[]string{"2024-03-09 02:30 EST", "2024-03-10 03:30 EDT", "2024-03-11 02:30 EDT"}},
		{"spring: hourly runs skip the missing hour", "0 * * * *", "2024-03-10 00:30:00", 0,
			[]string{"2024-03-10 01:00 EST", "2024-03-10 03:00 EDT", "2024-03-10 04:00 EDT"}},
		{"autumn: the repeated 01:30 runs once", "30 1 * * *", "2024-11-02 12:00:00", 3,
			[]string{"2024-11-03 01:30 EDT", "2024-11-04 01:30 EST", "2024-11-05 01:30 EST"}},
		{"autumn: hourly runs run in both passes", "30 * * * *", "2024-11-03 00:45:00", 0,
			[]string{"2024-11-03 01:30 EDT", "2024-11-03 01:30 EST", "2024-11-03 02:30 EST"}},
		{"autumn: a repeated time started in the second pass waits a day", "30 1 * * *", "2024-11-03 01:45:00", 0,
			[]string{"2024-11-04 01:30 EST"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				time.Sleep(time.Until(at(t, ny, tc.from)))
				ctx, cancel := context.WithCancel(t.Context())
				var got []string
				w := backi.Loop("dst", func(ctx context.Context) error {
					got = append(got, time.Now().In(ny).Format("2006-01-02 15:04 MST"))
					if len(got) == len(tc.want) {
						cancel()
					}
					return nil
				}, backi.WithSchedule(cron.MustParse(tc.expr, cron.WithLocation(ny))),
					backi.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
				if err := w.Run(ctx); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("runs at %v, want %v", got, tc.want)
				}
			})
		})
	}
}

func TestSchedulesSayTheirExpression(t *testing.T) {
	for expr, want := range map[string]string{
		"0 9 * * MON-FRI":                      "cron 0 9 * * MON-FRI (UTC)",
		"CRON_TZ=Europe/Paris 0 9 * * MON-FRI": "cron CRON_TZ=Europe/Paris 0 9 * * MON-FRI",
		"@every 1m":                            "cron @every 1m",
	} {
		if got := fmt.Sprint(cron.MustParse(expr)); got != want {
			t.Errorf("%q says %q, want %q", expr, got, want)
		}
	}
}
