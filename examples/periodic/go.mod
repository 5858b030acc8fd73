module github.com/backi-go/backi/examples/periodic

go 1.26

require (
	github.com/backi-go/backi v0.1.0
	github.com/backi-go/backi/cron v0.1.0
)

require github.com/netresearch/go-cron v0.9.1 // indirect

replace (
	github.com/backi-go/backi => ../..
	github.com/backi-go/backi/cron => ../../cron
)
