// web-probe: a tiny HTTP service for tests and benchmarks of service rollouts. It answers
// GET / with its VERSION, GET /health with 200 (or 503 when HEALTHY=false, a broken release),
// and `web-probe probe` is its own health check (no curl in a scratch image). SIGTERM drains.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		client := http.Client{Timeout: 2 * time.Second}
		res, err := client.Get("http://127.0.0.1:" + port + "/health")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		defer res.Body.Close()
		buf := make([]byte, 256)
		n, _ := res.Body.Read(buf)
		fmt.Printf("%d %s", res.StatusCode, buf[:n])
		if res.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		return
	}
	version := os.Getenv("VERSION")
	healthy := os.Getenv("HEALTHY") != "false"
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "%s\n", version) })
	http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "version %s: model failed to load\n", version)
			return
		}
		fmt.Fprintf(w, "version %s: ok\n", version)
	})
	// As PID 1 it gets no default SIGTERM handling: drain and exit, so `docker stop` does not wait out its timeout.
	srv := &http.Server{Addr: ":" + port}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
