package redis

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	type want struct {
		kind     string // simple, failover, cluster
		addrs    []string
		master   string
		user     string
		password string
		db       int
		tls      bool
	}
	tests := []struct {
		url  string
		want want
	}{
		{"redis://localhost:6380/2", want{kind: "simple", addrs: []string{"localhost:6380"}, db: 2}},
		{"rediss://u:p%40ss@cache.example:6380", want{kind: "simple", addrs: []string{"cache.example:6380"}, user: "u", password: "p@ss", tls: true}},
		{"redis+sentinel://:secret@s1:26379,s2,[::1]:26380/mymaster/3", want{kind: "failover",
			addrs: []string{"s1:26379", "s2:26379", "[::1]:26380"}, master: "mymaster", password: "secret", db: 3}},
		{"redis+sentinel://s1/mymaster", want{kind: "failover", addrs: []string{"s1:26379"}, master: "mymaster"}},
		{"rediss+sentinel://s1:1/m", want{kind: "failover", addrs: []string{"s1:1"}, master: "m", tls: true}},
		{"redis+cluster://n1:7000,n2:7001", want{kind: "cluster", addrs: []string{"n1:7000", "n2:7001"}}},
		{"redis+cluster://user:pw@n1,[::1]", want{kind: "cluster", addrs: []string{"n1:6379", "[::1]:6379"}, user: "user", password: "pw"}},
		{"rediss+cluster://n1:7000/", want{kind: "cluster", addrs: []string{"n1:7000"}, tls: true}},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			tgt, err := parseURL(tc.url)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			var got want
			switch {
			case tgt.simple != nil:
				o := tgt.simple
				got = want{kind: "simple", addrs: []string{o.Addr}, user: o.Username, password: o.Password, db: o.DB, tls: o.TLSConfig != nil}
				if !o.ContextTimeoutEnabled {
					t.Errorf("ContextTimeoutEnabled: got false, want true")
				}
			case tgt.failover != nil:
				o := tgt.failover
				got = want{kind: "failover", addrs: o.SentinelAddrs, master: o.MasterName, user: o.Username, password: o.Password, db: o.DB, tls: o.TLSConfig != nil}
				if !o.ContextTimeoutEnabled {
					t.Errorf("ContextTimeoutEnabled: got false, want true")
				}
			case tgt.cluster != nil:
				o := tgt.cluster
				got = want{kind: "cluster", addrs: o.Addrs, user: o.Username, password: o.Password, tls: o.TLSConfig != nil}
				if !o.ContextTimeoutEnabled {
					t.Errorf("ContextTimeoutEnabled: got false, want true")
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseURL:\ngot  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"",
		"localhost:6379",
		"http://localhost",
		"redis://:hunter2@localhost:notaport",
		"redis+sentinel://:hunter2@s1",
		"redis+sentinel://:hunter2@s1/m/x",
		"redis+sentinel://:hunter2@s1/m/1/2",
		"redis+sentinel://:hunter2@s1:0/m",
		"redis+sentinel://:hunter2@s1,,s2/m",
		"redis+sentinel://:hunter2@s1/m?x=1",
		"redis+cluster://:hunter2@n1/0",
		"redis+cluster://:hunter2@n1:7000:1",
		"redis+cluster://:hunter2@[::1",
		"redis+cluster://:hunter2@:7000",
	} {
		_, err := parseURL(u)
		if err == nil {
			t.Errorf("parseURL(%q): got no error", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("parseURL(%q): error %q reveals the password", u, err)
		}
	}
}
