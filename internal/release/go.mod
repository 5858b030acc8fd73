module github.com/backi-go/backi/internal/release

go 1.26.0

require (
	github.com/backi-go/backi v0.1.0
	golang.org/x/mod v0.41.0
)

replace github.com/backi-go/backi => ../..
