// Package drills proves llmgate's guarantees under fire: fault drills, a
// soak, a drain and a reload drill, and a security pass. Everything runs in
// process against the built-in simulator (internal/sim) and the gateway
// served by app.Serve on 127.0.0.1:0; no traffic leaves the machine.
//
// The package holds tests only. Test names are the contract:
//
//	TestDrill...     fault drills, soak, drain, reload (go test -run Drill ./...)
//	TestSecurity...  the security pass
//
// Short form (the default; what .ci/run runs with go test -race ./...):
// about 160 requests per fault scenario and a 20 s soak.
//
// Long form, by hand:
//
//	LLMGATE_DRILLS=long go test -race -run 'Drill|Security' -v -timeout 30m ./drills/
//	go test -race -v ./drills/ -args -drills.long
//
// about 1000 requests per scenario and a 3 min soak.
//
// Each drill logs a figures table (t.Logf; use -v to see it). With
// LLMGATE_DRILLS_REPORT=FILE every drill also appends its figures as a
// Markdown table row to FILE, which is how RELIABILITY.md's figures are made.
package drills
