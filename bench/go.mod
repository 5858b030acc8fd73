module github.com/backi-go/backi/bench

go 1.26.0

require (
	github.com/backi-go/backi v0.1.0
	github.com/go-co-op/gocron/v2 v2.21.2
	github.com/thejerf/suture/v4 v4.0.6
	go.uber.org/goleak v1.3.0
	k8s.io/apimachinery v0.37.2
)

require (
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/jonboulle/clockwork v0.5.0 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	k8s.io/klog/v2 v2.140.0 // indirect
	k8s.io/utils v0.0.0-20260626114624-be93311217bd // indirect
)

replace github.com/backi-go/backi => ../
