package backi_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/backi-go/backi"
)

// alwaysLeader is an Elector for one replica: it always wins at once.
// Package pgleader elects among replicas on PostgreSQL.
type alwaysLeader struct{ terms uint64 }

type soloTerm struct{ token uint64 }

func (e *alwaysLeader) Campaign(ctx context.Context) (backi.Term, error) {
	e.terms++
	return soloTerm{e.terms}, nil
}

func (soloTerm) Done() <-chan struct{}            { return nil } // never lost
func (t soloTerm) Token() uint64                  { return t.token }
func (soloTerm) Resign(ctx context.Context) error { return nil }

func ExampleWithLeader() {
	w := backi.Loop("reconciler", func(ctx context.Context) error {
		term, _ := backi.TermFrom(ctx)
		fmt.Println("reconciling under fencing token", term.Token())
		return backi.Stop(nil)
	}, backi.WithLeader(&alwaysLeader{}), backi.WithLogger(slog.New(slog.DiscardHandler)))
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output: reconciling under fencing token 1
}
