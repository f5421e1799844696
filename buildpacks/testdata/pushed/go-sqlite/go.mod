module example.com/go-sqlite

// +heroku goVersion go1.25

go 1.21

require github.com/mattn/go-sqlite3 v1.14.32
