//go:build tools

// Package tools pins the docker-build resource provider (the plugin behind
// the npm package @pulumi/docker-build), built from source by
// tools/toolchain.sh. It is a module of its own, apart from tools/pulumi,
// so that neither the CLI's nor the provider's dependency graph is upgraded
// to suit the other.
package tools

import (
	_ "github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build"
)
