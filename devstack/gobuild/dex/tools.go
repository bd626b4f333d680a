//go:build tools

// Package tools pins Dex v2.41.1 (the commit tagged v2.41.1) for devstack/build-cluster.sh:
// `go install github.com/dexidp/dex/cmd/dex@...` fails because dex's go.mod has a replace directive.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
