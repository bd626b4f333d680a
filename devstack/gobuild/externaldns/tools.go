//go:build tools

// Package tools pins the external-dns command.
package tools

import _ "sigs.k8s.io/external-dns"
