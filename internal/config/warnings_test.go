package config_test

import (
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/config"
)

func TestWarnings(t *testing.T) {
	t.Parallel()
	const head = "keys:\n  - name: k1\n    key: secret-1\n"
	tests := []struct {
		name string
		yaml string
		want []string // substrings, one per warning, in order
	}{
		{
			name: "clean",
			yaml: head + `backends:
  - {name: a, url: http://a.example, weight: 3}
  - {name: b, url: http://b.example}
`,
		},
		{
			name: "zero weights in a group",
			yaml: head + `backends:
  - {name: a, url: http://a.example, weight: 0}
  - {name: b, url: http://b.example, weight: 0}
  - {name: c, url: http://c.example, priority: 2}
`,
			want: []string{`backends: weights of priority group 1 sum to zero (a, b)`},
		},
		{
			name: "zero weight alone in a fallback group",
			yaml: head + `backends:
  - {name: a, url: http://a.example}
  - {name: b, url: http://b.example, weight: 0, priority: 2}
`,
			want: []string{`priority group 2 sum to zero: its only backend b has weight 0`},
		},
		{
			name: "zero weights for one route only",
			yaml: head + `backends:
  - {name: a, url: http://a.example, deployments: {gpt-4o: gpt-4o}}
  - {name: b, url: http://b.example, weight: 0, deployments: {o1: o1}}
  - {name: c, url: http://c.example, weight: 0, deployments: {o1: o1-eu}}
`,
			want: []string{`priority group 1 for "o1" sum to zero (b, c)`},
		},
		{
			name: "key with an empty models list",
			yaml: `keys:
  - {name: k1, key: secret-1}
  - {name: k2, key: secret-2, models: []}
backends:
  - {name: a, url: http://a.example}
`,
			want: []string{`keys[1].models: key "k2" has access to nothing: its models list is empty`},
		},
		{
			name: "key whose models no backend serves",
			yaml: `keys:
  - {name: k1, key: secret-1, models: [gpt-4o]}
  - {name: k2, key: secret-2, models: [o3, dall-e]}
backends:
  - {name: a, url: http://a.example, deployments: {gpt-4o: gpt-4o}}
`,
			want: []string{`keys[1].models: key "k2" has access to nothing: no backend serves any of o3, dall-e`},
		},
		{
			name: "key reaching a model through an alias",
			yaml: `keys:
  - {name: k1, key: secret-1, models: [fast]}
aliases:
  fast: gpt-4o-mini
backends:
  - {name: a, url: http://a.example, deployments: {gpt-4o-mini: mini}}
`,
		},
		{
			name: "alias to a name no backend serves",
			yaml: `keys:
  - {name: k1, key: secret-1}
aliases:
  fast: gpt-4o-mini
  ghost: nothing
backends:
  - {name: a, url: http://a.example, deployments: {gpt-4o-mini: mini}}
`,
			want: []string{`aliases.ghost: alias "ghost" leads to "nothing", which no backend serves: requests for it get 404 (and it is not listed in /v1/models)`},
		},
		{
			name: "backend with empty deployments",
			yaml: head + `backends:
  - {name: a, url: http://a.example}
  - {name: b, url: http://b.example, deployments: {}}
`,
			want: []string{`backends[1].deployments: backend "b" serves no route: its deployments mapping is empty`},
		},
		{
			name: "backend whose deployments no key may use",
			yaml: `keys:
  - {name: k1, key: secret-1, models: [gpt-4o]}
backends:
  - {name: a, url: http://a.example, deployments: {gpt-4o: gpt-4o}}
  - {name: b, url: http://b.example, deployments: {o1: o1, o3: o3}}
`,
			want: []string{`backends[1].deployments: backend "b" serves no route any key may use: no key lists any of its deployments (o1, o3)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse("test.yaml", []byte(tc.yaml), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := cfg.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("got %d warning(s) %q, want %d %q", len(got), got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if s := got[i].String(); !strings.Contains(s, w) {
					t.Errorf("warning %d: got %q, want it to contain %q", i, s, w)
				}
			}
		})
	}
}
