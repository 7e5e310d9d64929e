package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// target is the parsed Options.URL: exactly one field is set.
type target struct {
	simple   *goredis.Options
	failover *goredis.FailoverOptions
	cluster  *goredis.ClusterOptions
}

func (t target) client() goredis.UniversalClient {
	switch {
	case t.failover != nil:
		return goredis.NewFailoverClient(t.failover)
	case t.cluster != nil:
		return goredis.NewClusterClient(t.cluster)
	default:
		return goredis.NewClient(t.simple)
	}
}

// CheckURL reports whether raw is a URL New accepts (Options.URL), without
// connecting: `llmgate validate` uses it so that it refuses what serve
// would. The error never repeats the URL, which may hold a password.
func CheckURL(raw string) error {
	_, err := parseURL(raw)
	return err
}

// parseURL reads Options.URL. Errors never repeat the URL, which may hold a
// password. Every form honours context deadlines (ContextTimeoutEnabled),
// which is how Options.Timeout bounds each call.
func parseURL(raw string) (target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return target{}, errors.New("redis: URL has no scheme")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		o, err := goredis.ParseURL(raw)
		if err != nil {
			return target{}, fmt.Errorf("redis: parse %s URL: %w", scheme, redactErr(err))
		}
		o.ContextTimeoutEnabled = true
		return target{simple: o}, nil
	case "redis+sentinel", "rediss+sentinel":
		m, err := parseMulti(rest, "26379")
		if err != nil {
			return target{}, fmt.Errorf("redis: parse %s URL: %w", scheme, err)
		}
		parts := strings.Split(strings.Trim(m.path, "/"), "/")
		if parts[0] == "" || len(parts) > 2 {
			return target{}, fmt.Errorf("redis: parse %s URL: want path /mastername[/db]", scheme)
		}
		o := &goredis.FailoverOptions{
			MasterName:            parts[0],
			SentinelAddrs:         m.addrs,
			Username:              m.user,
			Password:              m.password,
			ContextTimeoutEnabled: true,
		}
		if len(parts) == 2 {
			if o.DB, err = strconv.Atoi(parts[1]); err != nil || o.DB < 0 {
				return target{}, fmt.Errorf("redis: parse %s URL: invalid database %q", scheme, parts[1])
			}
		}
		if scheme == "rediss+sentinel" {
			o.TLSConfig = m.tls()
		}
		return target{failover: o}, nil
	case "redis+cluster", "rediss+cluster":
		m, err := parseMulti(rest, "6379")
		if err != nil {
			return target{}, fmt.Errorf("redis: parse %s URL: %w", scheme, err)
		}
		if strings.Trim(m.path, "/") != "" {
			return target{}, fmt.Errorf("redis: parse %s URL: a cluster has no database path", scheme)
		}
		o := &goredis.ClusterOptions{
			Addrs:                 m.addrs,
			Username:              m.user,
			Password:              m.password,
			ContextTimeoutEnabled: true,
		}
		if scheme == "rediss+cluster" {
			o.TLSConfig = m.tls()
		}
		return target{cluster: o}, nil
	default:
		return target{}, fmt.Errorf("redis: unsupported URL scheme %q", scheme)
	}
}

// multiHost is "[[user]:password@]host1:port,host2:port[/path]".
type multiHost struct {
	user, password string
	addrs          []string
	path           string
}

func (m multiHost) tls() *tls.Config {
	host, _, _ := net.SplitHostPort(m.addrs[0])
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
}

func parseMulti(rest, defaultPort string) (multiHost, error) {
	var m multiHost
	if strings.ContainsAny(rest, "?#") {
		return m, errors.New("query options are not supported")
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, password, _ := strings.Cut(rest[:at], ":")
		var err error
		if m.user, err = url.PathUnescape(user); err != nil {
			return m, errors.New("invalid escape in user")
		}
		if m.password, err = url.PathUnescape(password); err != nil {
			return m, errors.New("invalid escape in password")
		}
		rest = rest[at+1:]
	}
	hosts := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hosts, m.path = rest[:i], rest[i:]
	}
	for h := range strings.SplitSeq(hosts, ",") {
		if h == "" {
			return m, errors.New("empty host")
		}
		addr, ok := hostPort(h, defaultPort)
		if !ok {
			return m, fmt.Errorf("invalid host %q", h)
		}
		m.addrs = append(m.addrs, addr)
	}
	return m, nil
}

// hostPort reads "host", "host:port", "[v6]" or "[v6]:port".
func hostPort(h, defaultPort string) (string, bool) {
	host, port := h, defaultPort
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		host = h[1:end]
		if after := h[end+1:]; after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return "", false
			}
			port = p
		}
	} else if before, after, ok := strings.Cut(h, ":"); ok {
		host, port = before, after
	}
	if n, err := strconv.Atoi(port); host == "" || err != nil || n <= 0 || n > 65535 {
		return "", false
	}
	return net.JoinHostPort(host, port), true
}

// redactErr drops the URL, which may hold a password, from net/url errors.
func redactErr(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
