package pgleader

import (
	"context"
	"testing"
	"time"

	"github.com/backi-go/backi/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// Item 5: the session asks the server to drop a client it cannot reach
// within seconds, and bounds its connect; a connection string can say
// otherwise.
func TestSessionBoundsAPartitionServerSide(t *testing.T) {
	url := pgtest.URL(t)
	s, err := NewSession(url)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.ConnectTimeout != 5*time.Second {
		t.Errorf("connect timeout %v, want 5s", s.cfg.ConnectTimeout)
	}
	conn, err := pgx.ConnectConfig(context.Background(), s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for name, want := range map[string]string{"tcp_keepalives_idle": "2", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "3", "tcp_user_timeout": "5000"} {
		var got string
		if err := conn.QueryRow(context.Background(), "SHOW "+name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s on the session's connection, want %s", name, got, want)
		}
	}

	mine, err := NewSession(url + "&tcp_user_timeout=12000&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	if got := mine.cfg.RuntimeParams["tcp_user_timeout"]; got != "12000" || mine.cfg.ConnectTimeout != 2*time.Second {
		t.Errorf("the connection string's settings were overridden: tcp_user_timeout %s, connect timeout %v", got, mine.cfg.ConnectTimeout)
	}
}

// A name won in an exchange during which the lease ran out gets no term: the
// connection, and its lock, are about to be dropped, and a term there would
// outlive its lock while another session leads.
func TestNoTermBeginsOnceTheLeaseRanOut(t *testing.T) {
	for _, lapsed := range []bool{false, true} {
		s, err := NewSession("postgres://nobody@127.0.0.1:1/none")
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.Elector("y")
		if err != nil {
			t.Fatal(err)
		}
		e.want = &campaign{won: make(chan struct{})}
		s.lapsed = lapsed
		ids := s.settle(plan{names: []string{"y"}}, result{rows: 1, found: map[string]int32{"y": 7}, won: map[string]bool{"y": true}})
		if begins := len(ids) == 1 && ids[0] == 7; begins == lapsed {
			t.Errorf("lapsed %v: terms begin for %v", lapsed, ids)
		}
	}
}

// An exchange that wins b while a's row is missing (fewer rows than names)
// forgets the other electors' ids, but keeps b's, whose term begins.
func TestSettleKeepsTheWinnersID(t *testing.T) {
	s, err := NewSession("postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	ea, _ := s.Elector("a")
	eb, _ := s.Elector("b")
	ea.id, eb.id = 5, 6
	ea.want = &campaign{won: make(chan struct{})}
	eb.want = &campaign{won: make(chan struct{})}
	ids := s.settle(plan{names: []string{"a", "b"}}, result{rows: 1, found: map[string]int32{"b": 6}, won: map[string]bool{"b": true}})
	if len(ids) != 1 || ids[0] != 6 {
		t.Fatalf("ids %v", ids)
	}
	if eb.id != 6 {
		t.Errorf("b's lock (id 6) was won and its term begins, but the elector's id is %d: begin makes its term with that id and unlocks 6", eb.id)
	}
}
