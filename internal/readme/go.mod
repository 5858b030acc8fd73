module github.com/backi-go/backi/internal/readme

go 1.26

require (
	github.com/backi-go/backi v0.1.0
	github.com/backi-go/backi/backido v0.0.0
	github.com/backi-go/backi/cron v0.0.0
	github.com/backi-go/backi/pgleader v0.0.0
	github.com/jackc/pgx/v5 v5.12.0
	github.com/samber/do/v2 v2.0.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/netresearch/go-cron v0.9.1 // indirect
	github.com/samber/go-type-to-string v1.8.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

replace (
	github.com/backi-go/backi => ../..
	github.com/backi-go/backi/backido => ../../backido
	github.com/backi-go/backi/cron => ../../cron
	github.com/backi-go/backi/pgleader => ../../pgleader
)
