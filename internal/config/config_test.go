package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const apim = `
listen: 127.0.0.1:8080
keys:
  - name: demo
    key: ${LLMGATE_DEMO_KEY}
backends:
  - name: oai-se
    url: https://example-se.openai.azure.com
    api_key: ${AOAI_SE_KEY}
    weight: 75
  - name: oai-fr
    url: https://example-fr.openai.azure.com/openai
    api_key: ${AOAI_FR_KEY}
    weight: 25
retry:
  count: 5
  interval: 1s
  delta: 1s
  max_interval: 8s
  first_fast_retry: false
`

var apimEnv = map[string]string{"LLMGATE_DEMO_KEY": "client-secret", "AOAI_SE_KEY": "se-secret", "AOAI_FR_KEY": "fr-secret"}

func TestParseAPIM(t *testing.T) {
	t.Parallel()
	c, err := Parse("apim.yaml", []byte(apim), env(apimEnv))
	if err != nil {
		t.Fatal(err)
	}
	if c.Keys[0].Key.Reveal() != "client-secret" || c.Backends[1].APIKey.Reveal() != "fr-secret" {
		t.Error("env not expanded")
	}
	if c.Backends[0].EffectiveWeight() != 75 || c.Retry.EffectiveCount() != 5 || c.Retry.MaxInterval.D() != 8*time.Second {
		t.Errorf("values: %+v", c)
	}
	if c.MaxBodyBytes != 32<<20 || c.Retry.Mode != "smart" || c.Timeouts.Connect.D() != 5*time.Second {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestExampleFileValidates(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "apim.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("examples/apim.yaml", data, env(apimEnv)); err != nil {
		t.Fatal(err)
	}
}

func TestProblemsListedWithPlaces(t *testing.T) {
	t.Parallel()
	bad := `
listen: 127.0.0.1:8080
keys:
  - name: demo
    key: ${MISSING_KEY}
    colour: blue
backends:
  - name: a
    url: http://a.example
    weight: -2
  - name: a
  - name: c
    url: ftp://c
retry:
  count: many
  interval: 1x
  mode: fancy
timeouts:
  connect: -1s
`
	_, err := Parse("bad.yaml", []byte(bad), env(nil))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *Error", err)
	}
	got := err.Error()
	for _, want := range []string{
		"keys[0].key: environment variable MISSING_KEY is not set (line 5)",
		"keys[0].colour: unknown key (line 6)",
		"backends[0].weight: must be >= 0",
		"backends[1].name: duplicate",
		"backends[1].url: required",
		"backends[2].url: must be an absolute http or https URL",
		"retry.count:",
		"retry.interval: invalid duration \"1x\"",
		"retry.mode: must be smart or apim",
		"timeouts.connect: must not be negative",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing problem %q in:\n%s", want, got)
		}
	}
}

func TestRequiredSections(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{"", "file is empty"},
		{"listen: x\n", "keys: at least one client key is required"},
		{"listen: x\n", "backends: at least one backend is required"},
		{"keys: [{name: a, key: k, key_sha256: " + strings.Repeat("a", 64) + "}]\n", "either key or key_sha256"},
		{"keys: [{name: a, key_sha256: xyz}]\n", "key_sha256: must be 64 hex digits"},
		{"- a\n- b\n", "must be a mapping"},
		{"listen: [\n", "yaml"},
	} {
		_, err := Parse("x.yaml", []byte(tc.body), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestSecretsMasked(t *testing.T) {
	t.Parallel()
	c, err := Parse("apim.yaml", []byte(apim), env(apimEnv))
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("cfg", "key", c.Keys[0].Key, "backend", c.Backends[0])
	outputs := []string{
		c.Redacted(),
		fmt.Sprintf("%v %+v %#v %s", c, c, c, c.Keys[0].Key),
		fmt.Sprint(c.Backends[0].APIKey),
		logged.String(),
	}
	for _, out := range outputs {
		for _, secret := range apimEnv {
			if strings.Contains(out, secret) {
				t.Errorf("secret %q printed in %q", secret, out)
			}
		}
	}
	if !strings.Contains(c.Redacted(), "****") {
		t.Error("Redacted shows no mask")
	}
}

func TestEnvExpansionTypes(t *testing.T) {
	t.Parallel()
	body := `
listen: ${ADDR}
max_body_bytes: ${MAX}
keys: [{name: k, key: "${K}"}]
backends:
  - name: b
    url: "http://${HOST}:8080"
    weight: ${W}
`
	c, err := Parse("x.yaml", []byte(body), env(map[string]string{"ADDR": ":9000", "MAX": "1024", "K": "123", "HOST": "h", "W": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9000" || c.MaxBodyBytes != 1024 || c.Keys[0].Key.Reveal() != "123" || c.Backends[0].URL != "http://h:8080" || c.Backends[0].EffectiveWeight() != 3 {
		t.Errorf("got %+v", c)
	}
}

// ${NAME} works unquoted where YAML's flow style would end a plain value at
// "{" or "}", as the issues write it (admin: {key: ${LLMGATE_ADMIN_KEY}});
// a value from the environment is still never read as YAML, an unset one is
// still named with its place, and text that looks like the placeholder
// stays what it is.
func TestEnvReferencesInFlowStyle(t *testing.T) {
	t.Parallel()
	body := `keys: [{name: a, key: ${K}}, {name: b, key: x${K}y}]
backends: [{name: be, url: "http://h", api_key: ${AK}, weight: ${W}}]
admin: {key: ${LLMGATE_ADMIN_KEY}}
tracing: {service_name: llmgateenvref~K~}
`
	vars := map[string]string{"K": "k1", "AK": "{a: [b, c]}", "W": "3", "LLMGATE_ADMIN_KEY": "adm"}
	c, err := Parse("x.yaml", []byte(body), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Keys[0].Key.Reveal(); got != "k1" {
		t.Errorf("keys[0].key = %q, want k1", got)
	}
	if got := c.Keys[1].Key.Reveal(); got != "xk1y" {
		t.Errorf("keys[1].key = %q, want xk1y", got)
	}
	if got := c.Backends[0].APIKey.Reveal(); got != "{a: [b, c]}" {
		t.Errorf("backends[0].api_key = %q, want the environment's value as it is", got)
	}
	if c.Backends[0].EffectiveWeight() != 3 || c.Admin.Key.Reveal() != "adm" {
		t.Errorf("weight %d, admin key %q", c.Backends[0].EffectiveWeight(), c.Admin.Key.Reveal())
	}
	if got := c.Tracing.ServiceName; got != "llmgateenvref~K~" {
		t.Errorf("tracing.service_name = %q, want the file's text unchanged", got)
	}

	delete(vars, "LLMGATE_ADMIN_KEY")
	_, err = Parse("x.yaml", []byte(body), env(vars))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].String() != "admin.key: environment variable LLMGATE_ADMIN_KEY is not set (line 3)" {
		t.Errorf("got %v, want admin.key's unset variable named on line 3", err)
	}
}

// A fraction where a whole number goes is refused, never truncated
// (weight 0.75 would be 0, rpm 0.5 no limit at all); and a value from the
// environment that does not fit is not quoted back (it may be a secret
// put in the wrong place).
func TestWholeNumbersAndUnquotedEnvValues(t *testing.T) {
	t.Parallel()
	body := `
keys: [{name: k, key: s, rpm: 0.5, max_streams: 0.9}]
backends:
  - {name: a, url: "http://a", weight: 0.75}
  - {name: b, url: "http://b", weight: "${SECRET}"}
retry: {count: 2.7, interval: "${SECRET}"}
routing: {retry_budget: {ratio: 0.2}}
`
	_, err := Parse("x.yaml", []byte(body), env(map[string]string{"SECRET": "sk-live-1234567"}))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want problems", err)
	}
	got := map[string]string{}
	for _, p := range ce.Problems {
		got[p.Path] = p.Message
	}
	for path, want := range map[string]string{
		"keys[0].rpm":         "must be a whole number",
		"keys[0].max_streams": "must be a whole number",
		"backends[0].weight":  "must be a whole number",
		"retry.count":         "must be a whole number",
		"backends[1].weight":  "not a whole number (not shown)",
		"retry.interval":      "not a duration such as 1s or 250ms (not shown)",
	} {
		if !strings.Contains(got[path], want) {
			t.Errorf("%s: got %q, want %q", path, got[path], want)
		}
	}
	for path, msg := range got {
		if strings.HasPrefix(path, "routing") {
			t.Errorf("%s, a fraction by nature: got %q", path, msg)
		}
	}
	if len(got) != 6 {
		t.Errorf("got %d problems, want 6: %v", len(got), got)
	}
	if strings.Contains(err.Error(), "sk-l") {
		t.Errorf("the problems quote the secret: %v", err)
	}
}

// A whole number written as a float (Helm renders large numbers as 1e+06)
// is taken as it is.
func TestWholeNumbersWrittenAsFloats(t *testing.T) {
	t.Parallel()
	c, err := Parse("x.yaml", []byte("keys: [{name: k, key: s, tpm: 1e+06, rpm: 200000.0}]\nbackends: [{name: a, url: 'http://a', weight: 2e2}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if k := c.Keys[0]; k.TPM != 1000000 || k.RPM != 200000 || c.Backends[0].EffectiveWeight() != 200 {
		t.Errorf("got tpm %d, rpm %d, weight %d; want 1000000, 200000, 200", k.TPM, k.RPM, c.Backends[0].EffectiveWeight())
	}
}

// An explicit 0 where 0 means something is kept, not taken for absent.
func TestExplicitZerosKept(t *testing.T) {
	t.Parallel()
	c, err := Parse("x.yaml", []byte(minimal+"routing: {max_wait: 0s, retry_budget: {ratio: 0, min_per_second: 0}}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if ro := c.Routing; ro.MaxWait != 0 || ro.RetryBudget.Ratio != 0 || ro.RetryBudget.MinPerSecond != 0 {
		t.Errorf("got max_wait %v, retry_budget %+v; want all 0 as given", ro.MaxWait.D(), ro.RetryBudget)
	}
	c, err = Parse("x.yaml", []byte(minimal+"routing: {max_wait: ~}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if ro := c.Routing; ro.MaxWait == 0 || ro.RetryBudget.Ratio != 0.5 || ro.RetryBudget.MinPerSecond != 50 {
		t.Errorf("absent or null: got max_wait %v, retry_budget %+v; want the defaults", ro.MaxWait.D(), ro.RetryBudget)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(apim))
	f.Add([]byte("keys: [{name: a, key: b}]\nbackends: [{name: x, url: 'http://x'}]\n"))
	f.Add([]byte("retry: {interval: 1x}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data, env(apimEnv))
		if err == nil && (len(c.Keys) == 0 || len(c.Backends) == 0) {
			t.Fatal("accepted a config without keys or backends")
		}
	})
}

// What serve would refuse, or run wrongly, validate refuses first.
func TestValidateRefusesWhatServeCannotRun(t *testing.T) {
	t.Parallel()
	adminSum := sha256.Sum256([]byte("admin-secret"))
	shared := sha256.Sum256([]byte("shared-secret"))
	var many strings.Builder
	for i := range MaxBackends + 1 {
		fmt.Fprintf(&many, "  - {name: b%d, url: \"http://b%d\"}\n", i, i)
	}
	for _, tc := range []struct{ name, body, path, want string }{
		{"listen", "listen: 127.0.0.1:not-a-port\n" + minimal, "listen", "must be host:port"},
		{"listen range", "listen: \":70000\"\n" + minimal, "listen", "must be host:port"},
		{"store timeout", "store: {timeout: -1s}\n" + minimal, "store.timeout", "must not be negative"},
		{"health check", "keys: [{name: k, key: s}]\nbackends: [{name: x, url: 'http://x', health_check: {path: /h, interval: -5s}}]\n", "backends[0].health_check.interval", "must not be negative"},
		{"drain delay", "timeouts: {drain_delay: -1s}\n" + minimal, "timeouts.drain_delay", "must not be negative"},
		{"backends", "keys: [{name: k, key: s}]\nbackends:\n" + many.String(), "backends", "at most 64 backends"},
		{"same plain keys", "keys: [{name: a, key: shared-secret}, {name: b, key: shared-secret}]\nbackends: [{name: x, url: 'http://x'}]\n", "keys[1].key", "the same key as keys[0] (a)"},
		{"plain and hashed", "keys: [{name: a, key: shared-secret}, {name: b, key_sha256: " + strings.ToUpper(hex.EncodeToString(shared[:])) + "}]\nbackends: [{name: x, url: 'http://x'}]\n", "keys[1].key_sha256", "the same key as keys[0] (a)"},
		{"admin as hashed client key", "admin: {key: admin-secret}\nkeys: [{name: a, key_sha256: " + hex.EncodeToString(adminSum[:]) + "}]\nbackends: [{name: x, url: 'http://x'}]\n", "keys[0].key_sha256", "must differ from admin.key"},
		{"admin as plain client key", "admin: {key: admin-secret}\nkeys: [{name: a, key: admin-secret}]\nbackends: [{name: x, url: 'http://x'}]\n", "keys[0].key", "must differ from admin.key"},
		{"duplicate deployment", "keys: [{name: k, key: s}]\nbackends: [{name: x, url: 'http://x', deployments: {gpt-4o: a, gpt-4o: b}}]\n", "backends[0].deployments.gpt-4o", "duplicate key"},
		{"env as a name", "keys: [{name: k, key: s, metadata: {\"${HOME}\": x}}]\nbackends: [{name: x, url: 'http://x'}]\n", "keys[0].metadata", "a name cannot come from the environment (${HOME})"},
		{"duplicate alias", "keys: [{name: k, key: s}]\nbackends: [{name: x, url: 'http://x'}]\naliases: {gpt-4: gpt-4o, gpt-4: gpt-4o-mini}\n", "aliases.gpt-4", "duplicate key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.body), env(nil))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want problems", err)
			}
			for _, p := range ce.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.want) {
					return
				}
			}
			t.Errorf("problems %v: want %s: %s", ce.Problems, tc.path, tc.want)
		})
	}
}

const minimal = "keys: [{name: k, key: s}]\nbackends: [{name: x, url: 'http://x'}]\n"

func TestTracingSampleRatio(t *testing.T) {
	t.Parallel()
	head := "keys:\n  - name: demo\n    key: client-secret\nbackends:\n  - name: a\n    url: https://a.openai.azure.com\n    api_key: k\ntracing:\n  endpoint: http://127.0.0.1:4318\n"
	for _, tc := range []struct {
		name, yaml string
		want       float64
		problem    bool
	}{
		{name: "absent", want: 1},
		{name: "null", yaml: "  sample_ratio: ~\n", want: 1},
		{name: "explicit zero", yaml: "  sample_ratio: 0\n", want: 0},
		{name: "fraction", yaml: "  sample_ratio: 0.25\n", want: 0.25},
		{name: "one", yaml: "  sample_ratio: 1\n", want: 1},
		{name: "above one", yaml: "  sample_ratio: 1.5\n", problem: true},
		{name: "negative", yaml: "  sample_ratio: -0.1\n", problem: true},
		{name: "nan", yaml: "  sample_ratio: .nan\n", problem: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse("t.yaml", []byte(head+tc.yaml), env(nil))
			if tc.problem {
				if err == nil || !strings.Contains(err.Error(), "tracing.sample_ratio") {
					t.Fatalf("got %v, want a tracing.sample_ratio problem", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := c.Tracing.SampleRatio; r != tc.want {
				t.Errorf("sample_ratio: got %v, want %v", r, tc.want)
			}
		})
	}
}
