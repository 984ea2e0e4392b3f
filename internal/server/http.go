package server

import (
	"io"
	"net/http"
	"strings"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxJSONBody bounds the body of POST /json.
const maxJSONBody = 1 << 20

// HTTPHandler returns the reference service's HTTP endpoints:
// GET /healthcheck (readiness: 200 once rules are loaded and the store
// answers), GET /livez (liveness: 200 while the process runs), POST /json
// and GET /rlconfig. extra, when not nil,
// receives every other path (metrics, for instance).
func (s *Service) HTTPHandler(extra http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthcheck", s.handleHealth)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK") })
	mux.HandleFunc("POST /json", s.handleJSON)
	mux.HandleFunc("GET /rlconfig", s.HandleRLConfig)
	if extra != nil {
		mux.Handle("/", extra)
	}
	return mux
}

func (s *Service) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.Serving() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "NOT_SERVING")
		return
	}
	_, _ = io.WriteString(w, "OK")
}

// HandleRLConfig writes the loaded rules, one per line.
func (s *Service) HandleRLConfig(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	cfg := s.lim.Config()
	if cfg == nil {
		return
	}
	var b strings.Builder
	for _, line := range cfg.Dump() {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(w, b.String())
}

// handleJSON serves POST /json: a protojson RateLimitRequest in, a
// protojson RateLimitResponse out; 429 when OVER_LIMIT, 400 on bad input,
// 503 when the store cannot decide.
func (s *Service) handleJSON(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var req rlsv3.RateLimitRequest
	if err := protojson.Unmarshal(body, &req); err != nil {
		http.Error(w, "parsing RateLimitRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := s.ShouldRateLimit(r.Context(), &req)
	if err != nil {
		code := http.StatusServiceUnavailable
		if status.Code(err) == codes.InvalidArgument {
			code = http.StatusBadRequest
		}
		http.Error(w, status.Convert(err).Message(), code)
		return
	}
	out, err := protojson.Marshal(resp)
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT {
		w.WriteHeader(http.StatusTooManyRequests)
	}
	_, _ = w.Write(out)
}
