module example.com/hello

go 1.25.4

require github.com/google/uuid v1.6.0
