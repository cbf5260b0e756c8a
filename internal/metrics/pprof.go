package metrics

import (
	"net/http"
	"net/http/pprof"
)

// WithProfiling adds Go's profiler (net/http/pprof) under /debug/pprof/ to the metrics
// handler. Profiles show code paths and sizes, never request content, but a heap dump can
// hold anything in memory: serve it only on a private listener, and only when asked.
func WithProfiling(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
