#!/usr/bin/env bash
# govulncheck against a local copy of the Go vulnerability database: the
# database is built from the golang.org/x/vulndb module (served by the Go
# module proxy), because vuln.go.dev itself is not reachable from every
# build machine. Fails when a vulnerability is reachable from our code.
set -euo pipefail
cd "$(dirname "$0")/.."
VULNDB=golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018
VULN=golang.org/x/vuln/cmd/govulncheck@v1.9.0
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
dir=$(go mod download -json "$VULNDB" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
go run "golang.org/x/vulndb/cmd/indexdb@${VULNDB#*@}" -vulns "$dir/data/osv" -out "$db/db"
echo "go: $(go version)"
go run "$VULN" -db "file://$db/db" ./...
