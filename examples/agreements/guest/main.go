// Command guest is the handler module of the sample extension
// com.acme.agreements: a list of service agreements kept in the install's
// key-value storage and refreshed from a vendor API.
//
// It builds to one WASI reactor, dist/main.wasm, which the manifest names as
// its entry. The endpoints' handlers (dist/handlers/list, …/get, …/sync) have
// no module of their own, so the runner calls the entry module, and the SDK
// dispatches on endpoint.handler:
//
//	GET  /agreements?page=&page_size=  list  → {items, total, page, page_size, synced_at}
//	GET  /agreements/:id               get   → one agreement, or 404 not_found
//	POST /agreements/sync              sync  → {synced, synced_at}
//
// and the event agreement.updated (dist/handlers/on_agreement_updated,
// dispatched by topic through guest.OnEvent): its payload, an agreement,
// is stored and indexed.
//
// Build it with ../build.sh (see ../README.md).
package main

import "github.com/extedge/extedge/sdk/guest"

// Handler names exactly as the manifest's endpoint.handler values.
const (
	handlerList = "dist/handlers/list"
	handlerGet  = "dist/handlers/get"
	handlerSync = "dist/handlers/sync"
)

// Registration happens in init: with -buildmode=c-shared the runner calls
// _initialize (which runs package inits) and never main.
func init() {
	guest.Handle(handlerList, listAgreements)
	guest.Handle(handlerGet, getAgreement)
	guest.Handle(handlerSync, syncAgreements)
	guest.OnEvent(topicAgreementUpdated, onAgreementUpdated)
}

func main() {}
