//go:build tools

// Package tools pins the Go modules that provide the Pulumi CLI and the
// provider plugins this project builds from source (they cannot be
// downloaded as release binaries on our machines). Importing the main
// packages here keeps them, and their exact dependency graph, in go.mod and
// go.sum; tools/toolchain.sh builds them with `go build`.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
