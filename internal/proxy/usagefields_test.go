package proxy

import "testing"

func TestUsageFieldsAnySpacing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ev               string
		usageOnly, noCho bool
		trimmed          string
	}{
		{`data: {"id":"c","choices":[],"usage":{"prompt_tokens":1}}`, true, false, ""},
		{`data: {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}`, true, false, ""},
		{`data: {"id":"c","choices":[ ],"usage": null}`, false, true, `data: {"id":"c","choices":[ ]}`},
		{`data: {"id":"c","choices":[{"delta":{}}],"usage":null}`, false, false, `data: {"id":"c","choices":[{"delta":{}}]}`},
		{`data: {"id": "c", "choices": [{"delta": {}}], "usage": null}`, false, false, `data: {"id": "c", "choices": [{"delta": {}}]}`},
		{`data: {"usage": null, "id": "c"}`, false, false, `data: {"id": "c"}`},
		{`data: {"usage":null}`, false, false, `data: {}`},
		{`data: {"id":"c","choices":[{"delta":{"content":"\"usage\": null"}}]}`, false, false, ""},
	} {
		if got := usageOnly([]byte(tc.ev)); got != tc.usageOnly {
			t.Errorf("usageOnly(%s) = %v", tc.ev, got)
		}
		if got := noChoices([]byte(tc.ev)); got != tc.noCho {
			t.Errorf("noChoices(%s) = %v", tc.ev, got)
		}
		want := tc.trimmed
		if want == "" {
			want = tc.ev
		}
		if got := string(trimUsageNull([]byte(tc.ev))); got != want {
			t.Errorf("trimUsageNull(%s) = %s, want %s", tc.ev, got, want)
		}
	}
}
