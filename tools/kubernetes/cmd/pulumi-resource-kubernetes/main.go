// Command pulumi-resource-kubernetes is the Kubernetes resource provider (the
// plugin behind the npm package @pulumi/kubernetes), served from the published
// module github.com/pulumi/pulumi-kubernetes/provider/v4.
//
// Upstream's own main cannot be built from that module: it embeds
// schema-embed.json and terraform-mapping-embed.json, which upstream's build
// generates (go generate) and the module does not ship. The module does ship
// their sources, schema.json and terraform-mapping.json, beside that main.
// go:embed only reads files in this package's directory, and the repository
// keeps no copies of upstream files, so tools/toolchain.sh builds this package
// with `go build -overlay`, which maps the two names below onto the files in
// the module cache (go vet needs the same -overlay). What upstream's generate
// step does to them, stamping the version into the schema, happens at startup.
package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema.json
var pulumiSchema []byte

//go:embed terraform-mapping.json
var terraformMapping []byte

func main() {
	schema, err := withVersion(pulumiSchema, version.Version)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-kubernetes: embedded schema: %v\n", err)
		os.Exit(1)
	}
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}

// withVersion returns the schema with its top-level "version" set, as
// upstream's generate step writes it; the schema is unchanged when the
// build stamped no version (-ldflags -X .../pkg/version.Version=X.Y.Z).
func withVersion(schema []byte, v string) ([]byte, error) {
	if v == "" {
		return schema, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(schema, &fields); err != nil {
		return nil, err
	}
	quoted, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	fields["version"] = quoted
	return json.Marshal(fields)
}
