// A Go app on github.com/mattn/go-sqlite3, which needs cgo: /sqlite
// answers with the SQLite version it runs, or with why it cannot open a
// database; / answers the platform's health check.
package main

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"

	_ "github.com/mattn/go-sqlite3"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/sqlite", func(w http.ResponseWriter, r *http.Request) {
		db, err := sql.Open("sqlite3", filepath.Join(os.TempDir(), "visits.db"))
		if err == nil {
			defer db.Close()
			_, err = db.Exec("create table if not exists visits (at text); insert into visits values (datetime('now'))")
		}
		if err != nil {
			http.Error(w, "sqlite: "+err.Error(), http.StatusInternalServerError)
			return
		}
		var version string
		var visits int
		db.QueryRow("select sqlite_version(), (select count(*) from visits)").Scan(&version, &visits)
		fmt.Fprintf(w, "hello from sqlite %s on %s, visit %d\n", version, runtime.Version(), visits)
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
