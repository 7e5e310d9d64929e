package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("hashed-secret"))
	s, err := NewSet([]Spec{{ID: "plain", Plain: "plain-secret"}, {ID: "hashed", SHA256Hex: hex.EncodeToString(sum[:])}})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]KeyID{"plain-secret": "plain", "hashed-secret": "hashed", "": "", "plain-secreT": "", "x": ""} {
		got := s.Lookup(in)
		if (got == nil) != (want == "") || (got != nil && got.ID != want) {
			t.Errorf("Lookup(%q) = %v, want %q", in, got, want)
		}
	}
	if _, err := NewSet([]Spec{{ID: "bad", SHA256Hex: "zz"}}); err == nil {
		t.Error("bad hex accepted")
	}
}

func TestFromRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    map[string]string
		want string
	}{
		{"api-key", map[string]string{"api-key": "k1"}, "k1"},
		{"bearer", map[string]string{"Authorization": "Bearer k2"}, "k2"},
		{"bearer lower", map[string]string{"Authorization": "bearer  k3 "}, "k3"},
		{"api-key wins", map[string]string{"api-key": "k1", "Authorization": "Bearer k2"}, "k1"},
		{"basic ignored", map[string]string{"Authorization": "Basic abc"}, ""},
		{"bare bearer", map[string]string{"Authorization": "Bearer"}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		if got := FromRequest(h); got != tt.want {
			t.Errorf("%s: FromRequest = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer x", "bearer", "BEARER   y  ", "Basic z", "", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := Bearer(v)
		if len(got) > len(v) {
			t.Fatalf("Bearer(%q) = %q longer than input", v, got)
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	specs := make([]Spec, 16)
	for i := range specs {
		specs[i] = Spec{ID: KeyID(rune('a' + i)), Plain: "secret-" + string(rune('a'+i))}
	}
	s, _ := NewSet(specs)
	b.ReportAllocs()
	for b.Loop() {
		if s.Lookup("secret-h") == nil {
			b.Fatal("miss")
		}
	}
}
