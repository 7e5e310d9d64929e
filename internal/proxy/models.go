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

// listModels answers GET /v1/models with the models the key may use: every
// configured route and alias it is allowed, and, where some backend serves
// any name, the names the key is limited to.
func (h *Handler) listModels(w http.ResponseWriter, cfg *Config, key *auth.Key, q *request) {
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
	b, _ := json.Marshal(list)
	q.status = http.StatusOK
	setGatewayHeaders(w.Header(), q)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	m, _ := w.Write(b)
	q.bytesOut += int64(m)
}
