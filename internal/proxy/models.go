package proxy

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"

	"github.com/llmgate/llmgate/internal/auth"
)

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string       `json:"object"`
	Data   []modelEntry `json:"data"`
}

// getModel answers GET /v1/models/{id} from the same list: the model's
// entry when the key may use it, else OpenAI's 404 model_not_found.
func (h *Handler) getModel(w http.ResponseWriter, cfg *Config, key *auth.Key, q *request, id string) {
	for _, m := range h.models(cfg, key).Data {
		if m.ID != id {
			continue
		}
		b, _ := json.Marshal(m)
		h.answerJSON(w, q, b)
		return
	}
	if cfg.Wildcard != nil && key.Allows(id, id) {
		// A backend serves any name: the gateway cannot know it is not one.
		b, _ := json.Marshal(modelEntry{ID: id, Object: "model", OwnedBy: "llmgate"})
		h.answerJSON(w, q, b)
		return
	}
	writeError(w, q, http.StatusNotFound, typeInvalidRequest, "model_not_found", "The model '"+id+"' does not exist or you do not have access to it.")
}

// listModels answers GET /v1/models with the models the key may use: every
// configured route and alias it is allowed, and, where some backend serves
// any name, the names the key is limited to.
func (h *Handler) listModels(w http.ResponseWriter, cfg *Config, key *auth.Key, q *request) {
	b, _ := json.Marshal(h.models(cfg, key))
	h.answerJSON(w, q, b)
}

// models lists the models key may use, sorted by name.
func (h *Handler) models(cfg *Config, key *auth.Key) modelList {
	seen := map[string]bool{}
	list := modelList{Object: "list", Data: []modelEntry{}}
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		list.Data = append(list.Data, modelEntry{ID: name, Object: "model", OwnedBy: "llmgate"})
	}
	for _, name := range cfg.Models {
		canon := name
		if a, ok := cfg.Aliases[name]; ok {
			canon = a
		}
		if key.Allows(name, canon) {
			add(name)
		}
	}
	if cfg.Wildcard != nil && key.Models != nil {
		for name := range key.Models {
			add(name)
		}
	}
	sort.Slice(list.Data, func(i, j int) bool { return list.Data[i].ID < list.Data[j].ID })
	return list
}

// answerJSON answers 200 with b, a JSON body the gateway made.
func (h *Handler) answerJSON(w http.ResponseWriter, q *request, b []byte) {
	q.status = http.StatusOK
	setGatewayHeaders(w.Header(), q)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	m, _ := w.Write(b)
	q.bytesOut += int64(m)
}
