package runnerpool

import (
	"crypto/tls"
	"net/http"
)

// useTLS makes a TCP runner speak HTTPS with cfg (the gateway's runners
// ca_file); Unix sockets stay plain (SPEC §12).
func (r *Runner) useTLS(network, addr string, cfg *tls.Config) {
	if cfg == nil || network != "tcp" {
		return
	}
	r.client.Transport.(*http.Transport).TLSClientConfig = cfg.Clone()
	r.base = "https://" + addr
}
