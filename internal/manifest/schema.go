package manifest

import _ "embed"

//go:embed manifest.schema.json
var schemaJSON []byte

// Schema returns the JSON Schema (draft 2020-12) for manifest.json, for
// editors. It describes structure and syntax only; Parse is authoritative.
// The returned slice is a copy.
func Schema() []byte {
	return append([]byte(nil), schemaJSON...)
}
