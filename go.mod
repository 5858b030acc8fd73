module github.com/backi-go/backi

go 1.26
