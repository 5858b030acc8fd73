package cron_test

import (
	"fmt"
	"time"

	"github.com/backi-go/backi/cron"
)

func ExampleParse() {
	s, err := cron.Parse("CRON_TZ=Europe/Paris 0 9 * * MON-FRI")
	if err != nil {
		fmt.Println(err)
		return
	}
	t := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) // a Friday
	for range 2 {
		t = s.Next(t)
		fmt.Println(t.UTC().Format("Mon 15:04 MST"))
	}
	_, err = cron.Parse("0 25 * * *")
	fmt.Println(err)
	// Output:
	// Mon 08:00 UTC
	// Tue 08:00 UTC
	// cron: "0 25 * * *": field 2 (hour) "25": end of range (25) above maximum (23): "25"
}
