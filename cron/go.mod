module github.com/backi-go/backi/cron

go 1.26

require github.com/backi-go/backi v0.0.0

require github.com/netresearch/go-cron v0.9.1

require go.uber.org/goleak v1.3.0

replace github.com/backi-go/backi => ../
