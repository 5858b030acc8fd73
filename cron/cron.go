// Package cron turns cron expressions into backi schedules, for
// backi.WithSchedule. It lives in its own module so that backi's root module
// needs no dependency; the parsing is done by github.com/netresearch/go-cron,
// a maintained continuation of robfig/cron.
//
// An expression has five fields, or six with seconds first:
//
//	[second] minute hour day-of-month month day-of-week
//
// with the usual *, lists (1,15), ranges (1-5), steps (*/10) and names (JAN,
// MON). When both day fields are restricted, a day matching either runs, as in
// Vixie cron. Descriptors stand for common expressions: @yearly (@annually),
// @monthly, @weekly, @daily (@midnight) and @hourly; "@every 1h30m" runs at a
// fixed interval from the previous run.
//
// Times are read in a time zone: the one named by a CRON_TZ= prefix
// ("CRON_TZ=Europe/Paris 0 9 * * MON-FRI"), else WithLocation's, else UTC.
//
// Daylight-saving changes: a run whose local time falls in the hour skipped in
// spring runs one hour later by the clock, at the instant it would have had
// without the change (02:30 runs at 03:30 on that day). A run whose local time
// falls in the hour repeated in autumn runs once, in the first pass, unless
// the schedule runs every hour: then it runs in both passes, an hour apart.
// Schedules in UTC have neither case.
package cron

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/backi-go/backi"
	gocron "github.com/netresearch/go-cron"
)

var parser = gocron.MustNewParser(gocron.SecondOptional | gocron.Minute | gocron.Hour |
	gocron.Dom | gocron.Month | gocron.Dow | gocron.Descriptor | gocron.DowOrDom)

// An Option configures Parse, which reports an invalid one, named.
type Option func(*config) error

type config struct{ loc *time.Location }

// WithLocation reads the expression's times in loc, unless the expression has
// a CRON_TZ= prefix. loc must not be nil; the default is UTC.
func WithLocation(loc *time.Location) Option {
	return func(c *config) error {
		if loc == nil {
			return errors.New("cron: WithLocation(nil): location is nil")
		}
		c.loc = loc
		return nil
	}
}

var fieldNames = []string{"minute", "hour", "day-of-month", "month", "day-of-week"}

// Parse parses a cron expression into a schedule. Its error names the field
// that could not be read. The schedule's String method, which
// backi.Status.Schedule shows, returns "cron " and the expression, followed
// by the time zone in parentheses unless the expression names its own:
// "cron 0 9 * * MON-FRI (UTC)".
func Parse(expr string, opts ...Option) (backi.Schedule, error) {
	c := config{loc: time.UTC}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("cron: nil Option")
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return nil, explain(expr, err)
	}
	ss, ok := s.(*gocron.SpecSchedule)
	if !ok {
		return named{s, "cron " + expr}, nil // @every
	}
	text := "cron " + expr
	if !hasZone(expr) {
		ss.Location = c.loc
		text += " (" + c.loc.String() + ")"
	}
	if bits.OnesCount64(ss.Hour&((1<<24)-1)) < 24 {
		return named{onceADay{ss}, text}, nil
	}
	return named{ss, text}, nil
}

// named is a schedule that says what it is: its expression.
type named struct {
	backi.Schedule
	text string
}

func (n named) String() string { return n.text }

// MustParse is Parse for expressions known to be valid: it panics on an error.
func MustParse(expr string, opts ...Option) backi.Schedule {
	s, err := Parse(expr, opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// onceADay makes a schedule that names its hours run a wall-clock time
// repeated when clocks go back only once, in the first pass. Schedules that
// run every hour keep running every hour.
type onceADay struct{ *gocron.SpecSchedule }

func (s onceADay) Next(after time.Time) time.Time {
	n := s.SpecSchedule.Next(after)
	for range 4 { // a zone changes its clocks at most a few times a day
		if n.IsZero() || !repeated(n.In(s.Location)) {
			break
		}
		n = s.SpecSchedule.Next(n)
	}
	return n
}

// repeated reports whether the wall-clock time of t already happened an hour
// or so earlier, because clocks went back in between.
func repeated(t time.Time) bool {
	_, now := t.Zone()
	_, before := t.Add(-3 * time.Hour).Zone()
	if before <= now {
		return false
	}
	twin := t.Add(-time.Duration(before-now) * time.Second)
	y1, m1, d1 := t.Date()
	y2, m2, d2 := twin.Date()
	return y1 == y2 && m1 == m2 && d1 == d2 && t.Hour() == twin.Hour() && t.Minute() == twin.Minute() && t.Second() == twin.Second()
}

func hasZone(expr string) bool {
	expr = strings.TrimSpace(expr)
	return strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=")
}

// explain finds the field at fault by parsing the expression again with one
// field at a time replaced by "*".
func explain(expr string, err error) error {
	fields := strings.Fields(expr)
	var prefix []string
	if hasZone(expr) {
		prefix, fields = fields[:1], fields[1:]
		if _, lerr := time.LoadLocation(strings.SplitN(prefix[0], "=", 2)[1]); lerr != nil {
			return fmt.Errorf("cron: %q: time zone %s: %w", expr, prefix[0], lerr)
		}
	}
	names := fieldNames
	switch {
	case len(fields) == 6:
		names = append([]string{"second"}, fieldNames...)
	case len(fields) != 5 || strings.HasPrefix(expr, "@"):
		return fmt.Errorf("cron: %q: %w", expr, err)
	}
	for i := range fields {
		try := append([]string(nil), fields...)
		try[i] = "*"
		if _, terr := parser.Parse(strings.Join(append(prefix, try...), " ")); terr == nil {
			return fmt.Errorf("cron: %q: field %d (%s) %q: %w", expr, i+1, names[i], fields[i], err)
		}
	}
	return fmt.Errorf("cron: %q: %w", expr, err)
}
