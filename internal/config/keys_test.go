package config

import (
	"maps"
	"strings"
	"testing"
)

func keyConfig(key string) string {
	return "keys:\n" + key + "backends:\n  - {name: a, url: http://a.example}\n"
}

// TestKeyMetadataForms: team and owner may be given at the top level of a
// key or under metadata (with other entries); both forms mean the same.
func TestKeyMetadataForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key   string
		team, owner string
		meta        map[string]string
	}{
		{"top level", "  - {name: k, key: s, team: search, owner: alice}\n", "search", "alice",
			map[string]string{"team": "search", "owner": "alice"}},
		{"metadata", "  - name: k\n    key: s\n    metadata: {team: search, owner: alice, cost_center: \"4711\"}\n", "search", "alice",
			map[string]string{"team": "search", "owner": "alice", "cost_center": "4711"}},
		{"mixed", "  - {name: k, key: s, team: search, metadata: {owner: alice, tier: 2}}\n", "search", "alice",
			map[string]string{"team": "search", "owner": "alice", "tier": "2"}},
		{"both, same value", "  - {name: k, key: s, team: search, metadata: {team: search}}\n", "search", "",
			map[string]string{"team": "search"}},
		{"none", "  - {name: k, key: s}\n", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("keys.yaml", []byte(keyConfig(tc.key)), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			k := c.Keys[0]
			if k.Team != tc.team || k.Owner != tc.owner {
				t.Errorf("team, owner: got %q, %q, want %q, %q", k.Team, k.Owner, tc.team, tc.owner)
			}
			if got := k.Meta(); !maps.Equal(got, tc.meta) {
				t.Errorf("Meta: got %v, want %v", got, tc.meta)
			}
		})
	}
}

func TestKeyMetadataProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, key, want string }{
		{"team conflict", "  - name: k\n    key: s\n    team: search\n    metadata:\n      team: ads\n",
			`keys[0].metadata.team: "ads" conflicts with keys[0].team "search": give it once, at the top level or under metadata (line 6)`},
		{"owner conflict", "  - name: k\n    key: s\n    owner: bob\n    metadata: {owner: alice}\n",
			`keys[0].metadata.owner: "alice" conflicts with keys[0].owner "bob"`},
		{"bad name", "  - {name: k, key: s, metadata: {Cost-Center: x}}\n", `keys[0].metadata: invalid name "Cost-Center"`},
		{"control character", "  - {name: k, key: s, metadata: {note: \"a\\nb\"}}\n", "keys[0].metadata.note: must be printable text"},
		{"not a mapping", "  - {name: k, key: s, metadata: [a]}\n", "keys[0].metadata: must be a mapping"},
		{"nested value", "  - {name: k, key: s, metadata: {team: {x: y}}}\n", "keys[0].metadata.team: must be a single value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("keys.yaml", []byte(keyConfig(tc.key)), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a problem %q", err, tc.want)
			}
		})
	}
}
