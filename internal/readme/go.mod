module github.com/backi-go/backi/internal/readme

go 1.26

require (
	github.com/backi-go/backi v0.1.0
	github.com/backi-go/backi/backido v0.1.0
	github.com/backi-go/backi/backifx v0.1.0
	github.com/backi-go/backi/cron v0.1.0
	github.com/backi-go/backi/pgleader v0.1.0
	github.com/jackc/pgx/v5 v5.12.0
	github.com/samber/do/v2 v2.0.0
	go.uber.org/fx v1.24.0
)

require (
	github.com/backi-go/backi/pgqueue v0.1.0
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/netresearch/go-cron v0.9.1 // indirect
	github.com/samber/go-type-to-string v1.8.0 // indirect
	go.uber.org/dig v1.19.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.26.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.0.0-20220412211240-33da011f77ad // indirect
	golang.org/x/text v0.41.0 // indirect
)

replace (
	github.com/backi-go/backi => ../..
	github.com/backi-go/backi/backido => ../../backido
	github.com/backi-go/backi/backifx => ../../backifx
	github.com/backi-go/backi/cron => ../../cron
	github.com/backi-go/backi/pgleader => ../../pgleader
	github.com/backi-go/backi/pgqueue => ../../pgqueue
)
