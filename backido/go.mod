module github.com/backi-go/backi/backido

go 1.26

require (
	github.com/backi-go/backi v0.1.0
	github.com/samber/do/v2 v2.0.0
)

require github.com/samber/go-type-to-string v1.8.0 // indirect

replace github.com/backi-go/backi => ../
