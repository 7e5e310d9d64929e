package proxy

import "testing"

func TestIsJSON(t *testing.T) {
	t.Parallel()
	obj := []byte(`  {"stream":true}`)
	for _, tc := range []struct {
		ct   string
		body []byte
		want bool
	}{
		{"", obj, true},
		{"application/json", obj, true},
		{"Application/JSON; charset=utf-8", obj, true},
		{"application/merge-patch+JSON", obj, true},
		// Labelled otherwise but plainly a JSON object: upstreams read it
		// as one, so the gateway does too (streams per key, token estimate).
		{"application/x-www-form-urlencoded", obj, true},
		{"text/plain", obj, true},
		{"application/x-www-form-urlencoded", []byte("a=1&b=2"), false},
		{"multipart/form-data; boundary=x", obj, false},
		{"Multipart/Form-Data; boundary=x", obj, false},
		{"text/plain", []byte("   "), false},
	} {
		if got := isJSON(tc.ct, tc.body); got != tc.want {
			t.Errorf("isJSON(%q, %q) = %v, want %v", tc.ct, tc.body, got, tc.want)
		}
	}
}

func TestDropCredentials(t *testing.T) {
	t.Parallel()
	const secret = "sk-secret-123"
	for _, tc := range []struct{ raw, want string }{
		{"", ""},
		{"api-version=2024-02-01", "api-version=2024-02-01"},
		{"api-version=2024-02-01&x=%2F%20a+b&x=2&empty=", "api-version=2024-02-01&x=%2F%20a+b&x=2&empty="},
		{"api-version=2024-02-01&api-key=" + secret, "api-version=2024-02-01"},
		{"Subscription-Key=abc&api-version=1", "api-version=1"},
		{"api-version=1&foo=" + secret + "&b=2", "api-version=1&b=2"},
		{"api-version=1&auth=Bearer%20" + secret, "api-version=1"},
		{"semi=a;b&api-version=1", "semi=a;b&api-version=1"},
		{"api-version=1&bad=%zz", ""},
	} {
		if got := dropCredentials(tc.raw, secret); got != tc.want {
			t.Errorf("dropCredentials(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestCarries(t *testing.T) {
	t.Parallel()
	v := []string{"Token sk-secret-123", "other"}
	if !carries(v, "sk-secret-123") {
		t.Error("a header value holding the key: not found")
	}
	if carries(v, "sk-other") {
		t.Error("a key not in the values: found")
	}
	if carries(v, "") {
		t.Error("no key presented: every header would be dropped")
	}
}
