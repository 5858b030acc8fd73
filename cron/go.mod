module github.com/backi-go/backi/cron

go 1.26

require github.com/backi-go/backi v0.1.0

require github.com/netresearch/go-cron v0.9.1

replace github.com/backi-go/backi => ../
