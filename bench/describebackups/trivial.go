package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// serveTrivial is the hidden subcommand "-serve-trivial ADDR BODYFILE": the
// baseline, a plain net/http server that answers every request with the
// bytes of BODYFILE (a real DescribeBackups page of 30) and nothing else.
func serveTrivial(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: describebackups -serve-trivial ADDR BODYFILE")
		return 2
	}
	body, err := os.ReadFile(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// What the most trivial handler does: like rdsbackup, no explicit
		// Content-Length, so a body this size goes out chunked in both.
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.Write(body)
	})
	// The same server timeouts as rdsbackup serve.
	hs := &http.Server{
		Addr:              args[0],
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintln(os.Stderr, hs.ListenAndServe())
	return 1
}
