module example.com/go-old-goline

go 1.15
