// Command caddy is Caddy with the standard modules and the extedge gateway
// module (http.handlers.extedge, admin.api.extedge). It is the checked-in
// fallback of xcaddy.sh: `CGO_ENABLED=0 go build -tags nobadger,nomysql,nopgx
// -o bin/caddy ./cmd/caddy` gives the same binary xcaddy would.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// The standard Caddy modules, as in the official distribution.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The extedge gateway: http.handlers.extedge and admin.api.extedge.
	_ "github.com/extedge/extedge/caddymodule"
)

func main() {
	caddycmd.Main()
}
