package app_test

import (
	"net/http"
	"testing"

	"github.com/llmgate/llmgate/internal/app"
)

// TestKeyInfoMetric: llmgate_key_info has one series per configured key,
// by name, with team and owner in either config form, and follows a
// reload; llmgate_tokens_total has a total series.
func TestKeyInfoMetric(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	up := rec.upstream(t, "a", ok())
	keys := func(second string) string {
		return "listen: 127.0.0.1:0\nkeys:\n  - name: " + keyName + "\n    key: ${CLIENT_KEY}\n    team: search\n    owner: alice\n" +
			second + "admin:\n  key: ${ADMIN_KEY}\nbackends:\n  - name: a\n    url: " + up.URL + "\n"
	}
	g := startOps(t, opsConfig(t, keys("  - name: ads\n    key: ads-secret\n    metadata: {team: ads, owner: bob, cost_center: \"4711\"}\n")), app.Options{})
	f := scrape(t, g.Srv.URL)
	for _, want := range []lbl{
		{"key": keyName, "team": "search", "owner": "alice"},
		{"key": "ads", "team": "ads", "owner": "bob"},
	} {
		if v := f.value("llmgate_key_info", want); v != 1 {
			t.Errorf("llmgate_key_info%v: got %v, want 1", want, v)
		}
	}
	if n := len(f.find("llmgate_key_info", nil)); n != 2 {
		t.Errorf("llmgate_key_info: got %d series, want 2", n)
	}

	if err := g.App.Reload(opsConfig(t, keys("  - name: ads\n    key: ads-secret\n    metadata: {team: growth}\n"))); err != nil {
		t.Fatal(err)
	}
	f = scrape(t, g.Srv.URL)
	if v := f.value("llmgate_key_info", lbl{"key": "ads", "team": "growth", "owner": ""}); v != 1 {
		t.Errorf("llmgate_key_info{key=ads,team=growth} after reload: got %v, want 1", v)
	}
	if n := len(f.find("llmgate_key_info", nil)); n != 2 {
		t.Errorf("llmgate_key_info after reload: got %d series, want 2", n)
	}

	if resp, body := g.send(t, chatPath, chatBody); resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}
	f = scrapeUntil(t, g.Srv.URL, "a request's tokens", func(f families) bool {
		return f.value("llmgate_tokens_total", lbl{"key": keyName, "type": "total"}) > 0
	})
	p := f.value("llmgate_tokens_total", lbl{"key": keyName, "type": "prompt"})
	c := f.value("llmgate_tokens_total", lbl{"key": keyName, "type": "completion"})
	if tot := f.value("llmgate_tokens_total", lbl{"key": keyName, "type": "total"}); p == 0 || tot != p+c {
		t.Errorf("llmgate_tokens_total: prompt %v + completion %v, total %v", p, c, tot)
	}
}
