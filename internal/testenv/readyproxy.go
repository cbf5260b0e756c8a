package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// ReadyProxy stands in front of several carebridge processes as a load balancer would:
// it sends every request to the first backend whose active check (/_carebridge/active:
// it holds the lease, starting or started) answered 200 at the last look (every 100 ms),
// and answers 503 while none is. (Not readiness: on Synapse a starting process must be
// reached by the homeserver's ping before it becomes ready.)
type ReadyProxy struct {
	srv      *httptest.Server
	backends []*url.URL
	proxies  []*httputil.ReverseProxy

	mu      sync.Mutex
	ready   int // index of the ready backend, -1 for none
	pinned  int // index of a backend every request goes to, ready or not; -1 for none
	changes []ReadyChange
	stop    chan struct{}
}

// ReadyChange is when the proxy began sending to another backend (-1: none).
type ReadyChange struct {
	Backend int
	At      time.Time
}

// NewReadyProxy starts the proxy; backends are added (AddBackend) once their ports are
// known. It stops at the end of the test.
func NewReadyProxy(t testing.TB) *ReadyProxy {
	p := &ReadyProxy{ready: -1, pinned: -1, stop: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() { close(p.stop); p.srv.Close() })
	go p.watch()
	return p
}

// URL is the proxy's address (what the homeserver and Twilio are given).
func (p *ReadyProxy) URL() string { return p.srv.URL }

// AddBackend puts a process behind the proxy (its base URL); the first added that is
// ready is preferred.
func (p *ReadyProxy) AddBackend(t testing.TB, backend string) {
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatalf("bad backend %q: %v", backend, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends = append(p.backends, u)
	p.proxies = append(p.proxies, httputil.NewSingleHostReverseProxy(u))
}

// Pin sends every request to backend i whether it is ready or not (-1: by readiness
// again), as a load balancer that has not noticed yet would.
func (p *ReadyProxy) Pin(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pinned = i
}

// Changes lists when the proxy switched backends.
func (p *ReadyProxy) Changes() []ReadyChange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ReadyChange(nil), p.changes...)
}

func (p *ReadyProxy) watch() {
	client := &http.Client{Timeout: time.Second}
	for {
		ready := -1
		p.mu.Lock()
		backends := append([]*url.URL(nil), p.backends...)
		p.mu.Unlock()
		for i, b := range backends {
			resp, err := client.Get(b.String() + "/_carebridge/active")
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ready = i
					break
				}
			}
		}
		p.mu.Lock()
		if ready != p.ready {
			p.ready = ready
			p.changes = append(p.changes, ReadyChange{Backend: ready, At: time.Now()})
		}
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *ReadyProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	ready := p.ready
	if p.pinned >= 0 {
		ready = p.pinned
	}
	var proxy *httputil.ReverseProxy
	if ready >= 0 {
		proxy = p.proxies[ready]
	}
	p.mu.Unlock()
	if proxy == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no carebridge process is ready", http.StatusServiceUnavailable)
		return
	}
	proxy.ServeHTTP(w, r)
}
