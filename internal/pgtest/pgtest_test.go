package pgtest

import (
	"net"
	"testing"

	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestURLFindsAListeningServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := "postgres://u@" + ln.Addr().String() + "/db"
	t.Setenv("BACKI_PG_URL", want)
	if got := URL(t); got != want {
		t.Fatalf("URL = %q, want %q", got, want)
	}
}
