//go:build unix

package drills

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDrillDrain: SIGTERM mid-load, wired exactly as cmd/llmgate wires it
// (signal.NotifyContext → the context app.Serve runs with). Every request
// the gateway accepted — in flight at SIGTERM or accepted before the
// listener closed — gets its full answer, streams included; requests after
// that are refused at connect, which a client sees at once and can send
// elsewhere. None is lost in between: the gateway logged, and the backend
// received, exactly the requests that got full answers.
func TestDrillDrain(t *testing.T) {
	o := simOptions("a")
	o.TokenInterval = 20 * time.Millisecond // ~200 ms per answer, so many are in flight
	a := newSim(t, "a", o)
	cfg := drillConfig(t, []backendSpec{be(a)}, nil)

	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stopSignals()
	g := startGatewayIn(t, ctx, cfg)

	c := newClient(t, g.url)
	c.tr.DisableKeepAlives = true // each request dials: accepted, or refused
	var (
		mu      sync.Mutex
		results []result
		ends    []time.Time
	)
	var wg sync.WaitGroup
	var next atomic.Int64
	const workers = 2 * concurrency
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				k := mixed(i)
				req := c.request(k, i)
				req.Header.Set("X-Drill-Id", strconv.Itoa(i))
				r := c.send(req, k, i)
				mu.Lock()
				results = append(results, r)
				ends = append(ends, time.Now())
				mu.Unlock()
				if r.out == lost || i > 5000 {
					return // the listener is closed: stop sending
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	sigAt := time.Now()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := g.stop(); err != nil {
		t.Fatalf("Serve after SIGTERM: %v", err)
	}
	drained := time.Since(sigAt)
	wg.Wait()

	// After Serve returned, nothing listens.
	if conn, err := net.DialTimeout("tcp", g.addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("the gateway still accepts connections after Serve returned")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after drain: %v, want connection refused", err)
	}

	f := summarize(t.Name(), results, drained, a)
	f.report(t)
	served, refused, inflightAtSignal, acceptedAfter := 0, 0, 0, 0
	for j, r := range results {
		at, reached := a.arrivedAt(strconv.Itoa(r.i))
		switch {
		case r.out == okAnswer:
			served++
			if reached && at.Before(sigAt) && ends[j].After(sigAt) {
				inflightAtSignal++
			}
			if reached && at.After(sigAt) {
				acceptedAfter++
			}
		case r.out == lost && !reached && refusedAtConnect(r.err):
			refused++
		default:
			t.Errorf("request %d (%s): %s (status %d, reached the backend %v, err %v): accepted but not fully answered",
				r.i, r.kind, r.out, r.status, reached, r.err)
		}
	}
	t.Logf("drain: %d requests in flight at SIGTERM and %d accepted after it all got full answers; Serve returned %v after SIGTERM; "+
		"%d served in all, %d refused at connect once the listener closed",
		inflightAtSignal, acceptedAfter, drained.Round(time.Millisecond), served, refused)
	if inflightAtSignal < concurrency {
		t.Errorf("only %d requests in flight at SIGTERM, want >= %d: the drill did not drain anything", inflightAtSignal, concurrency)
	}
	// The gateway logged exactly the requests it answered, and the backend
	// saw exactly those: nothing accepted was dropped.
	if got := g.log.accessLines(t); got != served {
		t.Errorf("access log lines = %d, full answers = %d: a request the gateway accepted was lost", got, served)
	}
	if got := a.received.Load(); got != int64(served) {
		t.Errorf("backend received %d requests, clients got %d full answers", got, served)
	}
	if lim := f.clientP(1) + time.Second; drained > lim {
		t.Errorf("drain took %v, want <= the longest answer + 1s = %v", drained, lim)
	}
	logs := g.log.String()
	for _, msg := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, msg) {
			t.Errorf("log has no %s line", msg)
		}
	}
	expectNoLeak(t, a)
}

// refusedAtConnect reports whether a client error happened before any
// request reached a server: connection refused, or reset while connecting
// (a connection left in the listen backlog when the listener closed).
func refusedAtConnect(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// TestDrillReload: the config changes under load — weights shift, a
// backend is added, one removed and put back, retry settings change, and a
// broken file is rejected — with zero failed requests; after each swap the
// traffic follows the new config.
func TestDrillReload(t *testing.T) {
	a := newSim(t, "a", simOptions("a"))
	b := newSim(t, "b", simOptions("b"))
	cs := newSim(t, "c", simOptions("c"))
	g := startGateway(t, drillConfig(t, []backendSpec{be(a), be(b)}, nil))

	type step struct {
		what     string
		backends []backendSpec
		set      map[string]any
	}
	steps := []step{
		{"weights 3:1", []backendSpec{be(a).w(3), be(b).w(1)}, nil},
		{"add backend c", []backendSpec{be(a).w(1), be(b).w(1), be(cs).w(2)}, nil},
		{"remove backend a", []backendSpec{be(b), be(cs)}, nil},
		{"put a back, retry settings changed", []backendSpec{be(a), be(b), be(cs)}, map[string]any{"retry.count": 1, "retry.interval": "5ms"}},
		{"weights 0:1:1", []backendSpec{be(a).w(0), be(b).w(1), be(cs).w(1)}, nil},
	}
	rounds := 1
	pause := 300 * time.Millisecond
	if long() {
		rounds, pause = 6, time.Second
	}
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("listen: 127.0.0.1:0\nbackends: [{name: x}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	c := newClient(t, g.url)
	stop := make(chan struct{})
	var rs []result
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { rs = driveUntil(c, concurrency, mixed, stop) })

	var removedAt []time.Time // when a was removed
	var addedAt time.Time     // when c was first added
	reloads := 0
	time.Sleep(pause)
	for range rounds {
		for _, s := range steps {
			cfg := drillConfig(t, s.backends, s.set)
			if err := g.app.Reload(cfg); err != nil {
				t.Errorf("Reload (%s): %v", s.what, err)
			}
			reloads++
			switch s.what {
			case "add backend c":
				if addedAt.IsZero() {
					addedAt = time.Now()
				}
			case "remove backend a":
				removedAt = append(removedAt, time.Now())
			}
			time.Sleep(pause)
		}
		if err := g.app.ReloadFile(broken); err == nil {
			t.Error("ReloadFile(broken config) = nil, want an error")
		}
		time.Sleep(pause / 2)
	}
	close(stop)
	wg.Wait()

	f := summarize(t.Name(), rs, time.Since(start), a, b, cs)
	f.report(t)
	expectAllAnswered(t, f, rs)
	expectFullSuccess(t, f, rs)
	if f.n < 200 {
		t.Errorf("only %d requests during the reloads, want >= 200", f.n)
	}
	// a gets nothing between its removal and its return (100 ms of slack
	// for requests already on their way).
	for _, at := range removedAt {
		for _, arr := range a.arrivalTimes() {
			if arr.After(at.Add(100*time.Millisecond)) && arr.Before(at.Add(pause-20*time.Millisecond)) {
				t.Errorf("backend a received a request %v after it was removed", arr.Sub(at).Round(time.Millisecond))
				break
			}
		}
	}
	gotC := 0
	for _, arr := range cs.arrivalTimes() {
		if arr.Before(addedAt) {
			t.Errorf("backend c received a request before it was added")
			break
		}
		gotC++
	}
	if gotC == 0 {
		t.Error("backend c, added mid-load, received no request")
	}
	logs := g.log.String()
	if n := strings.Count(logs, `"msg":"config reloaded"`); n != reloads {
		t.Errorf("config reloaded log lines = %d, want %d", n, reloads)
	}
	if n := strings.Count(logs, `"msg":"config reload rejected"`); n != rounds {
		t.Errorf("config reload rejected log lines = %d, want %d", n, rounds)
	}
	t.Logf("reload: %d reloads and %d rejected file(s) during %d requests; c served %d after it was added", reloads, rounds, f.n, gotC)
	expectOneLogLinePerAnswer(t, g, f)
	expectNoLeak(t, a, b, cs)
}
