package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// CheckTimeout bounds each readiness check; a homeserver slower than this is not ready.
const CheckTimeout = 2 * time.Second

// Check is one readiness check. Run returns nil when ready; its error is shown in the
// answer, so it must not hold content.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Readiness is the JSON answer of /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// Failed names the checks that failed, sorted.
	Failed []string `json:"failed,omitempty"`
	// Checks holds "ok" or the failure of each check.
	Checks map[string]string `json:"checks"`
}

// Handler serves /metrics (this registry), /healthz (200 while the process runs) and
// /readyz (200 when every check passes within CheckTimeout, otherwise 503).
func (m *Metrics) Handler(checks []Check, log zerolog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:      promLog{log},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		res := Ready(r.Context(), checks)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !res.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	return mux
}

// Ready runs the checks concurrently, each within CheckTimeout.
func Ready(ctx context.Context, checks []Check) Readiness {
	res := Readiness{Ready: true, Checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, check := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			err := check.Run(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				res.Checks[check.Name] = "ok"
				return
			}
			res.Ready = false
			res.Failed = append(res.Failed, check.Name)
			res.Checks[check.Name] = shorten(err.Error())
		})
	}
	wg.Wait()
	slices.Sort(res.Failed)
	return res
}

func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// promLog passes promhttp's errors (a failed database read during a scrape) to zerolog.
type promLog struct{ log zerolog.Logger }

func (p promLog) Println(v ...any) {
	p.log.Warn().Str("error", fmt.Sprint(v...)).Msg("Metrics scrape incomplete")
}

// Server is the metrics listener.
type Server struct {
	http *http.Server
	addr string
	done chan struct{}
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.addr }

// Listen binds addr at once, so that a taken port stops the start with an error, and
// serves handler in the background until Close.
func Listen(addr string, handler http.Handler, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on network.metrics.listen %s (choose a free port or leave it empty): %w", addr, err)
	}
	s := &Server{
		http: &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Err(err).Msg("Metrics listener stopped")
		}
	}()
	log.Info().Str("address", ln.Addr().String()).Msg("Serving metrics and health checks")
	return s, nil
}

// Close stops the listener, letting requests in progress finish for up to 5 seconds.
func (s *Server) Close() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	<-s.done
}
