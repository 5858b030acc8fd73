package pgleader_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/pgleader"
)

// fixedTerm is an elector that grants one term with a given token at once.
type fixedTerm uint64

func (f fixedTerm) Campaign(ctx context.Context) (backi.Term, error) { return f, nil }
func (f fixedTerm) Done() <-chan struct{}                            { return nil }
func (f fixedTerm) Token() uint64                                    { return uint64(f) }
func (f fixedTerm) Resign(ctx context.Context) error                 { return nil }

// saveUnder records t for name with the store, under a term with the token.
func saveUnder(t *testing.T, s *pgleader.Store, token uint64, name string, at time.Time) error {
	t.Helper()
	var err error
	w := backi.Loop("saver", func(ctx context.Context) error {
		err = s.SaveRun(ctx, name, at)
		return backi.Stop(nil)
	}, backi.WithLeader(fixedTerm(token)))
	if rerr := w.Run(context.Background()); rerr != nil {
		t.Fatal(rerr)
	}
	return err
}

func TestStoreRefusesAStaleTerm(t *testing.T) {
	s, err := pgleader.NewStore(dbURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	name := fmt.Sprintf("store-%d", rand.Int64())
	ctx := context.Background()
	if last, err := s.LastRun(ctx, name); err != nil || !last.IsZero() {
		t.Fatalf("LastRun of a new name = %v, %v", last, err)
	}
	t1 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	if err := saveUnder(t, s, 5, name, t1); err != nil {
		t.Fatal(err)
	}
	if err := saveUnder(t, s, 3, name, t1.Add(time.Hour)); !errors.Is(err, pgleader.ErrStaleTerm) {
		t.Fatalf("a deposed leader's record: %v, want ErrStaleTerm", err)
	}
	if err := saveUnder(t, s, 6, name, t1.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastRun(ctx, name); err != nil || !last.Equal(t1.Add(2*time.Hour)) {
		t.Fatalf("LastRun = %v, %v", last, err)
	}
}
