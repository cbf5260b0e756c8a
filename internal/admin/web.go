package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/carebridge/carebridge/internal/logmask"
	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/workflow"
)

// `carebridge web -c config.yaml` serves the secure chat's patient pages alone, as one of
// any number of replicas over the bridge's PostgreSQL database: no appservice, no queues,
// no Matrix or Twilio connection. What a patient does there that the bridge must act on
// (a code to text, a message for the room, a reading) is handed to it through the database,
// and live updates cross processes by LISTEN/NOTIFY (securechat/live.go, handoff.go).

// The replica's health checks, on its own listener: liveness, and readiness (the database
// and the connection that receives the other processes' signals answer).
const (
	webHealthPath = "/healthz"
	webReadyPath  = "/readyz"
)

// exitRefused is a start refused for the config's sake (as the bridge's own refusals).
const exitRefused = 13

func runWeb(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs, path := toolFlags("web", stderr)
	listen := fs.String("listen", "", "host:port to serve the pages on (default: appservice.hostname and appservice.port of the config)")
	if code, ok := parseToolArgs(fs, args, stderr); !ok {
		return code
	}
	refuse := func(err error) int {
		fmt.Fprintln(stderr, "carebridge web refuses to start:", err)
		return exitRefused
	}
	env, err := readToolConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	if env.Bridge.Database.Type != "postgres" {
		return refuse(fmt.Errorf("database.type is %q: web replicas share the bridge's database, which takes PostgreSQL "+
			"(database.type: postgres). With SQLite one process only may use it: the bridge, which serves the patient pages itself",
			env.Bridge.Database.Type))
	}
	if err = env.Network.Validate(); err != nil {
		return refuse(err)
	}
	publicBase := strings.TrimRight(env.Bridge.AppService.PublicAddress, "/")
	if env.Network.Twilio.PublicURLOverride != "" {
		publicBase = strings.TrimRight(env.Network.Twilio.PublicURLOverride, "/")
	}
	if publicBase == "" {
		return refuse(errors.New("appservice.public_address is not set: it is the address patients reach the pages at (the links' base)"))
	}
	clock, err := workflow.ProcessClock()
	if err != nil {
		return refuse(err)
	}
	addr := *listen
	if addr == "" {
		addr = net.JoinHostPort(env.Bridge.AppService.Hostname, strconv.Itoa(int(env.Bridge.AppService.Port)))
	}

	// Phone numbers and names are masked in every log writer, as in the bridge.
	logmask.Install()
	log, err := env.Bridge.Logging.Compile()
	if err != nil {
		return refuse(fmt.Errorf("failed to set up logging: %w", err))
	}
	env.Log = log.With().Str("component", "web").Logger()
	ctx, stop := signal.NotifyContext(env.Log.WithContext(ctx), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err = env.openDB(ctx); err != nil {
		fmt.Fprintln(stderr, "carebridge web:", err)
		return exitFailed
	}
	defer env.Close()

	svc := securechat.NewServiceWithKeys(env.DB, &env.Network.SecureChat, env.Keys, env.Network.ClinicName, publicBase)
	svc.Now = clock.Now
	if err = svc.Share(ctx, env.Bridge.Database.URI); err != nil {
		fmt.Fprintln(stderr, "carebridge web:", err)
		return exitFailed
	}
	defer svc.Stop()
	mux := http.NewServeMux()
	securechat.NewWeb(svc, securechat.WebOptions{
		PublicURL:       publicBase,
		InsecureCookies: securechat.LoopbackHTTP(publicBase),
		Log:             log,
		Location:        workflow.ClinicLocation(&env.Network.BusinessHours),
	}).Register(mux)
	mux.HandleFunc("GET "+webHealthPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+webReadyPath, webReady(svc, env))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "carebridge web: failed to listen on %s (choose a free port with --listen): %v\n", addr, err)
		return exitFailed
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	served := make(chan error, 1)
	go func() { served <- server.Serve(ln) }()
	env.Log.Info().Str("address", ln.Addr().String()).Str("public_address", publicBase).Msg("Serving the secure chat's patient pages")
	select {
	case <-ctx.Done():
	case err = <-served:
		env.Log.Err(err).Msg("The web listener stopped")
		return exitFailed
	}
	env.Log.Info().Msg("Stopping")
	// Open event streams never go idle: they get a moment, then are cut (the pages reconnect
	// to another replica).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err = server.Shutdown(shutdownCtx); err != nil {
		_ = server.Close()
	}
	return 0
}

// webReady answers 200 when the database and the signals' connection answer, 503 with
// the names of the failed checks otherwise (the reasons go to the log, not to whoever asks:
// this listener is the public one).
func webReady(svc *securechat.Service, env *toolEnv) http.HandlerFunc {
	checks := []metrics.Check{
		{Name: "database", Run: func(ctx context.Context) error { return env.DB.RawDB.PingContext(ctx) }},
		{Name: "signals", Run: func(context.Context) error { return svc.SignalsReady() }},
	}
	return func(w http.ResponseWriter, r *http.Request) {
		res := metrics.Ready(r.Context(), checks)
		for _, name := range res.Failed {
			env.Log.Warn().Str("check", name).Str("error", res.Checks[name]).Msg("Not ready")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !res.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": res.Ready, "failed": res.Failed})
	}
}
