// Package auth recognises client keys.
//
// Keys are held only as SHA-256 digests and every lookup compares the
// presented key's digest against every configured digest in constant time,
// so neither the time taken nor the answer reveals which bytes were right.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// KeyID names a client key in logs and metrics; it is never the key itself.
type KeyID string

// Key is one client key's identity and policy. Immutable.
type Key struct {
	ID KeyID
	// Models the key may use; nil means all.
	Models map[string]bool
	// Meta is carried into logs and metrics (team, owner).
	Meta map[string]string
}

// Allows reports whether the key may use the model or deployment name
// (checked as the client gave it and after aliases).
func (k *Key) Allows(name, canon string) bool {
	return k.Models == nil || k.Models[name] || k.Models[canon]
}

type entry struct {
	digest [sha256.Size]byte
	key    *Key
}

// Set is an immutable set of client keys. Safe for concurrent use.
type Set struct {
	entries []entry
}

// Spec describes one key for NewSet: exactly one of Plain and SHA256Hex is set.
type Spec struct {
	ID        KeyID
	Plain     string
	SHA256Hex string
	// Models the key may use; nil means all.
	Models []string
	Meta   map[string]string
}

// NewSet builds a Set from specs.
func NewSet(specs []Spec) (*Set, error) {
	s := &Set{entries: make([]entry, 0, len(specs))}
	for _, sp := range specs {
		var e entry
		switch {
		case sp.Plain != "":
			e.digest = sha256.Sum256([]byte(sp.Plain))
		case sp.SHA256Hex != "":
			b, err := hex.DecodeString(sp.SHA256Hex)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("auth: key %s: key_sha256 must be 64 hex digits", sp.ID)
			}
			copy(e.digest[:], b)
		default:
			return nil, fmt.Errorf("auth: key %s: no key", sp.ID)
		}
		e.key = &Key{ID: sp.ID, Meta: sp.Meta}
		if sp.Models != nil {
			e.key.Models = make(map[string]bool, len(sp.Models))
			for _, m := range sp.Models {
				e.key.Models[m] = true
			}
		}
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// Lookup returns the key matching the presented secret, or nil.
// It always compares against every key, so its timing does not depend on
// which key matched or how many bytes of a wrong key were right.
func (s *Set) Lookup(presented string) *Key {
	if presented == "" {
		// Hash anyway, so a missing key costs the same as a wrong one.
		presented = "\x00"
	}
	d := sha256.Sum256([]byte(presented))
	var found *Key
	for i := range s.entries {
		if subtle.ConstantTimeCompare(d[:], s.entries[i].digest[:]) == 1 {
			found = s.entries[i].key
		}
	}
	return found
}

// FromRequest returns the client's key from the api-key header or, failing
// that, from "Authorization: Bearer KEY". It returns "" when neither is set.
func FromRequest(h http.Header) string {
	if v := h.Get("Api-Key"); v != "" {
		return v
	}
	return Bearer(h.Get("Authorization"))
}

// Bearer extracts the token from an Authorization header value, or "".
// The scheme is case-insensitive; surrounding spaces are ignored.
func Bearer(v string) string {
	v = strings.TrimSpace(v)
	const prefix = "bearer "
	if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(v[len(prefix):])
}
