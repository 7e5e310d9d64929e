package app_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
)

// TestStoreURLChecked: validate refuses the Redis URLs serve would refuse,
// with the same parser, and never repeats a password.
func TestStoreURLChecked(t *testing.T) {
	t.Parallel()
	base := "keys: [{name: k, key: s}]\nbackends: [{name: a, url: http://a.example}]\n"
	check := func(url string) error {
		_, err := config.Parse("x.yaml", []byte(base+"store: {type: redis, url: \""+url+"\"}\n"), noEnv, app.Check)
		return err
	}
	for _, tc := range []struct{ url, want string }{
		{"http://x", `store.url: redis: unsupported URL scheme "http"`},
		{"redis://:hunter2@h/abc", "store.url: redis: parse redis URL"},
		{"redis://:hunter2@h:notaport/0", "store.url: redis: parse redis URL"},
		{"redis+sentinel://:hunter2@s1:26379", "store.url: redis: parse redis+sentinel URL: want path /mastername[/db]"},
		{"redis+sentinel://:hunter2@s1,,s2/m", "store.url: redis: parse redis+sentinel URL: empty host"},
		{"redis+cluster://:hunter2@n1/0", "store.url: redis: parse redis+cluster URL"},
		{"localhost:6379", "store.url: redis: URL has no scheme"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			err := check(tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a problem %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the problem reveals the password: %v", err)
			}
		})
	}
	for _, u := range []string{"redis://:pw@127.0.0.1:6379/2", "rediss://h:6380", "redis+sentinel://s1,s2:26380/mymaster/1", "redis+cluster://n1:7000,n2"} {
		if err := check(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func noEnv(string) (string, bool) { return "", false }

// TestStoreURLCheckedBesideOtherProblems: one run of validate lists a bad
// store URL together with the config's own problems, each on its line.
func TestStoreURLCheckedBesideOtherProblems(t *testing.T) {
	t.Parallel()
	src := "keys: [{name: k, key: s}]\nbackends: [{name: a, url: http://a.example, weight: -1}]\nstore:\n  type: redis\n  url: \"localhost:6379\"\n"
	_, err := config.Parse("x.yaml", []byte(src), noEnv, app.Check)
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a config.Error", err)
	}
	var store, weight bool
	for _, p := range ce.Problems {
		switch {
		case p.Path == "store.url":
			store = true
			if p.Line != 5 {
				t.Errorf("store.url problem on line %d, want 5", p.Line)
			}
		case strings.HasPrefix(p.Path, "backends[0].weight"):
			weight = true
		}
	}
	if !store || !weight {
		t.Fatalf("problems %v: want both store.url and backends[0].weight", ce.Problems)
	}
}

// TestTLSFilesChecked: validate loads the listener's certificate and key as
// serve does, so a missing file or a key of another certificate is a
// problem and a good pair passes.
func TestTLSFilesChecked(t *testing.T) {
	t.Parallel()
	dir1, dir2 := t.TempDir(), t.TempDir()
	cert1, key1 := selfSigned(t, dir1, 1)
	_, key2 := selfSigned(t, dir2, 2)
	base := "keys: [{name: k, key: s}]\nbackends: [{name: a, url: http://a.example}]\n"
	check := func(cert, key string) error {
		_, err := config.Parse("x.yaml", []byte(base+"tls: {cert_file: '"+cert+"', key_file: '"+key+"'}\n"), noEnv, app.Check, app.CheckTLS)
		return err
	}
	if err := check(cert1, key1); err != nil {
		t.Fatalf("a good pair: %v", err)
	}
	for name, tc := range map[string]struct{ cert, key, want string }{
		"missing certificate": {dir1 + "/nope.crt", key1, "no such file"},
		"key of another":      {cert1, key2, "private key does not match public key"},
	} {
		err := check(tc.cert, tc.key)
		if err == nil || !strings.Contains(err.Error(), "tls: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a tls problem %q", name, err, tc.want)
		}
	}
}
