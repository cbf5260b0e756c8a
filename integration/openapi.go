package integration

import (
	"net/http"

	"github.com/carebridge/carebridge"
)

// serveOpenAPI serves the API's OpenAPI 3 document; it needs no token.
func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(carebridge.OpenAPI)
}
