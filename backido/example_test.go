package backido_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backido"
	"github.com/samber/do/v2"
)

// DB stands for a connection pool such as *sql.DB: one for the program.
type DB struct{ begun int }

func (db *DB) Begin(ctx context.Context) (*Tx, error) {
	db.begun++
	fmt.Println("begin tx", db.begun)
	return &Tx{id: db.begun}, nil
}

func (db *DB) Shutdown() { fmt.Println("close the pool") }

// Tx stands for a transaction such as *sql.Tx: one per turn. do calls its
// Shutdown after the turn, whatever happened.
type Tx struct {
	id   int
	done bool
}

func (tx *Tx) Commit() error {
	tx.done = true
	fmt.Println("commit tx", tx.id)
	return nil
}

func (tx *Tx) Shutdown() error {
	if !tx.done {
		fmt.Println("roll back tx", tx.id)
	}
	return nil
}

// Reconcile is the iteration, built every turn with the turn's Tx.
type Reconcile struct{ tx *Tx }

func (r *Reconcile) Run(ctx context.Context) error {
	switch r.tx.id {
	case 2:
		return errors.New("conflict") // a failure: the Tx rolls back
	case 3:
		return backi.Stop(r.tx.Commit()) // the example ends here
	}
	return r.tx.Commit()
}

func ExampleContinuous() {
	root := do.New() // the program's injector: what lives as long as the program
	do.Provide(root, func(do.Injector) (*DB, error) { return &DB{}, nil })

	// What lives for one turn: registered anew in each turn's scope.
	turn := do.Package(
		do.Lazy(func(i do.Injector) (*Tx, error) {
			ctx := do.MustInvoke[context.Context](i) // the turn's
			return do.MustInvoke[*DB](i).Begin(ctx)
		}),
		do.Lazy(func(i do.Injector) (*Reconcile, error) {
			return &Reconcile{tx: do.MustInvoke[*Tx](i)}, nil
		}),
	)

	w, err := backido.Continuous[*Reconcile]("reconciler", root, turn,
		backi.WithBackoff(backi.ConstantBackoff(time.Millisecond)), backi.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println("failures:", w.Status().Failures)
	root.Shutdown() // after Run: the pool goes last
	// Output:
	// begin tx 1
	// commit tx 1
	// begin tx 2
	// roll back tx 2
	// begin tx 3
	// commit tx 3
	// failures: 1
	// close the pool
}
