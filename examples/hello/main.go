// Command hello is the smallest extedge extension handler: GET /hello
// answers with a greeting. Build it with ./build.sh (a WASI reactor,
// dist/hello.wasm) and see sdk/guest/README.md.
package main

import "github.com/extedge/extedge/sdk/guest"

// config is the install configuration this extension understands.
type config struct {
	Greeting string `json:"greeting"`
}

// Registration must happen in init: with -buildmode=c-shared the host runs
// _initialize (package inits) but never main.
func init() {
	guest.Handle("dist/hello", hello)
}

func hello(r *guest.Request) guest.Response {
	cfg := config{Greeting: "hello"}
	if err := r.DecodeConfig(&cfg); err != nil {
		return guest.Error(500, "bad_config", err.Error())
	}
	name := r.Query("name")
	if name == "" {
		name = "world"
	}
	guest.Log.Infof("greeting %s", name)
	return guest.JSON(200, map[string]string{
		"message":    cfg.Greeting + ", " + name,
		"request_id": r.Context.RequestID,
	})
}

func main() {}
