package sim

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
)

const maxAdminBody = 64 << 10

// serveAdmin answers the /sim/ routes; see the package documentation.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		adminError(w, errUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/sim/faults":
		s.adminFaults(w, r)
	case "/sim/outage":
		s.adminOutage(w, r)
	case "/sim/stats":
		if !allow(w, r, http.MethodGet) {
			adminError(w, methodNotAllowed())
			return
		}
		writeJSON(w, s.Stats())
	default:
		adminError(w, errNotFound)
	}
}

func (s *Server) adminFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, s.Faults())
	case http.MethodPut, http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
		if err != nil {
			adminError(w, errTooLarge)
			return
		}
		f, err := s.changeFaults(func(f *Faults) error {
			// The body names the faults to inject: a rate or switch it
			// leaves out is off; a delay it leaves out keeps its value.
			*f = f.cleared()
			if err := json.Unmarshal(body, f); err != nil {
				return err
			}
			return f.Validate()
		})
		if err != nil {
			adminError(w, badRequest("", "Invalid faults: %v", err))
			return
		}
		s.logger.InfoContext(r.Context(), "simulator faults replaced", slog.Any("faults", f))
		writeJSON(w, f)
	case http.MethodDelete:
		f, _ := s.changeFaults(func(f *Faults) error {
			*f = f.cleared()
			return nil
		})
		s.logger.InfoContext(r.Context(), "simulator faults cleared")
		writeJSON(w, f)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, POST, DELETE")
		adminError(w, methodNotAllowed())
	}
}

type outageJSON struct {
	Remaining jsonDuration `json:"remaining"`
}

func (s *Server) adminOutage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodPut:
		d, err := parseSpan(r.URL.Query().Get("for"))
		if err != nil || d < 0 {
			adminError(w, badRequest("for", "Query parameter 'for' must be a number of seconds "+
				"such as 10 or 1.5, or a duration such as 10s or 1m30s."))
			return
		}
		s.StartOutage(d)
		s.logger.InfoContext(r.Context(), "simulator outage started", slog.Duration("for", d))
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, PUT")
		adminError(w, methodNotAllowed())
		return
	}
	writeJSON(w, outageJSON{Remaining: jsonDuration(s.outageRemaining())})
}

// allow reports whether r uses method (or HEAD for GET), setting Allow if not.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", method)
	return false
}

// writeJSON sends v as a 200 JSON answer.
func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		adminError(w, errInternal)
		return
	}
	writeBody(w, http.StatusOK, "application/json", append(body, '\n'))
}

// adminError sends e; admin answers are not counted in Stats.
func adminError(w http.ResponseWriter, e *apiError) {
	writeBody(w, e.status, "application/json", e.body())
}
