package main

import (
	"cmp"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/extedge/extedge/sdk/guest"
)

// Paging of list.
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// maxAgreements caps one sync. Every stored or removed agreement is one
// host call and the runner allows 1000 per invocation (SPEC §5.4): a sync
// replacing 480 agreements by 480 others stays inside that with room for
// the secret, fetch, index and log calls.
const maxAgreements = 480

// maxIDLen bounds vendor ids so that keys stay far below the 256-byte KV
// key limit.
const maxIDLen = 128

// Error codes of this extension, besides the host's own (see
// guest.ErrorFrom), in the {"error":{"code","message"}} body.
const (
	codeInvalidQuery   = "invalid_query"       // 400: page, page_size, sort or direction is not valid
	codeNotFound       = "not_found"           // 404: no agreement with that id
	codeConfigMissing  = "config_missing"      // 500: the install has no vendor_url
	codeConfigInvalid  = "config_invalid"      // 500: vendor_url is not an http(s) URL
	codeSecretMissing  = "secret_missing"      // 500: the install has no VENDOR_API_KEY secret
	codeVendorError    = "vendor_error"        // 502: the vendor answered non-2xx or unreadable data
	codeTooManyRecords = "too_many_agreements" // 502: the vendor sent more than maxAgreements
)

// Install configuration and secret names (set by the tenant admin).
const (
	configVendorURL = "vendor_url"
	secretAPIKey    = "VENDOR_API_KEY"
)

// vendorTimeout bounds the vendor call; the sync endpoint has 15 s in all.
const vendorTimeout = 10 * time.Second

// listPage is the JSON the UI pages through.
type listPage struct {
	Items     []Agreement `json:"items"`
	Total     int         `json:"total"`
	Page      int         `json:"page"`
	PageSize  int         `json:"page_size"`
	Sort      string      `json:"sort"`
	Direction string      `json:"direction"`
	SyncedAt  *string     `json:"synced_at"` // null before the first sync
}

// listAgreements answers one page of agreements sorted by the sort column
// (default id) in direction asc (default) or desc, ties by id. page starts
// at 1; pages past the end are empty, with the total still set.
func listAgreements(r *guest.Request) guest.Response {
	page, err := positiveQuery(r, "page", 1)
	if err != nil {
		return guest.Error(400, codeInvalidQuery, err.Error())
	}
	size, err := positiveQuery(r, "page_size", defaultPageSize)
	if err != nil {
		return guest.Error(400, codeInvalidQuery, err.Error())
	}
	size = min(size, maxPageSize)
	column := cmp.Or(r.HTTP.Query["sort"], "id")
	if _, ok := sortColumns[column]; !ok {
		return guest.Error(400, codeInvalidQuery, fmt.Sprintf("sort must be one of %s, not %q", sortColumnNames, column))
	}
	direction := cmp.Or(r.HTTP.Query["direction"], "asc")
	if direction != "asc" && direction != "desc" {
		return guest.Error(400, codeInvalidQuery, fmt.Sprintf("direction must be asc or desc, not %q", direction))
	}
	m, err := loadMeta()
	if err != nil {
		return guest.ErrorFrom(err)
	}
	ids, err := orderedIDs(m, column, direction == "desc")
	if err != nil {
		return guest.ErrorFrom(err)
	}
	out := listPage{Items: []Agreement{}, Total: len(ids), Page: page, PageSize: size, Sort: column, Direction: direction}
	if m.SyncedAt != "" {
		out.SyncedAt = &m.SyncedAt
	}
	// page*size cannot overflow: page is bounded by positiveQuery.
	start := (page - 1) * size
	for i := start; i < len(ids) && i < start+size; i++ {
		a, err := loadAgreement(ids[i])
		if guest.IsCode(err, guest.CodeNotFound) {
			// Only possible if a record was removed behind the index's
			// back; show the rest rather than failing the page.
			guest.Log.Warnf("agreement %q is in the index but not stored", ids[i])
			continue
		}
		if err != nil {
			return guest.ErrorFrom(err)
		}
		out.Items = append(out.Items, a)
	}
	return guest.JSON(200, out)
}

// maxPage keeps (page-1)*page_size far from overflowing.
const maxPage = 1_000_000

// positiveQuery reads an optional positive integer query parameter.
func positiveQuery(r *guest.Request, name string, def int) (int, error) {
	s, ok := r.HTTP.Query[name]
	if !ok || s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPage {
		return 0, fmt.Errorf("%s must be an integer between 1 and %d", name, maxPage)
	}
	return n, nil
}

// getAgreement answers one agreement by id.
func getAgreement(r *guest.Request) guest.Response {
	id := r.Param("id")
	if id == "" || len(id) > maxIDLen {
		return guest.Error(404, codeNotFound, "no such agreement")
	}
	a, err := loadAgreement(id)
	if guest.IsCode(err, guest.CodeNotFound) {
		return guest.Error(404, codeNotFound, fmt.Sprintf("agreement %q not found", id))
	}
	if err != nil {
		return guest.ErrorFrom(err)
	}
	return guest.JSON(200, a)
}

// config is the install configuration this extension reads.
type config struct {
	VendorURL string `json:"vendor_url"`
}

// syncAgreements pulls every agreement from the vendor and makes storage mirror it.
func syncAgreements(r *guest.Request) guest.Response {
	var cfg config
	if err := r.DecodeConfig(&cfg); err != nil {
		return guest.Error(500, codeConfigInvalid, "install config must be a JSON object whose "+configVendorURL+" is a string")
	}
	base, resp := vendorBase(cfg.VendorURL)
	if resp != nil {
		return *resp
	}
	key, err := guest.Secret(secretAPIKey)
	if guest.IsCode(err, guest.CodeNotFound) {
		return guest.Error(500, codeSecretMissing,
			"secret "+secretAPIKey+" is not set for this install (extctl secrets set … "+secretAPIKey+"=…)")
	}
	if err != nil {
		return guest.ErrorFrom(err)
	}
	agreements, resp := fetchAgreements(base, key)
	if resp != nil {
		return *resp
	}
	syncedAt := time.Now().UTC().Format(time.RFC3339)
	if err := replaceAll(agreements, syncedAt); err != nil {
		return guest.ErrorFrom(err)
	}
	guest.Log.Infof("synced %d agreements", len(agreements))
	// Metrics are best-effort: a sync that stored everything succeeded.
	_ = guest.Metric("agreements_synced", float64(len(agreements)), guest.Gauge, nil)
	return guest.JSON(200, map[string]any{"synced": len(agreements), "synced_at": syncedAt})
}

// vendorBase checks the configured vendor URL and returns it without a
// trailing slash, or the error response to send.
func vendorBase(raw string) (string, *guest.Response) {
	if strings.TrimSpace(raw) == "" {
		e := guest.Error(500, codeConfigMissing,
			"install config "+configVendorURL+" is not set (extctl install … --config "+configVendorURL+"=https://…)")
		return "", &e
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		e := guest.Error(500, codeConfigInvalid, "install config "+configVendorURL+" must be an http(s) URL without query")
		return "", &e
	}
	return strings.TrimRight(raw, "/"), nil
}

// fetchAgreements calls GET {base}/vendor/agreements and checks what comes
// back, or returns the error response to send.
func fetchAgreements(base, apiKey string) ([]Agreement, *guest.Response) {
	fail := func(status int, code, msg string) ([]Agreement, *guest.Response) {
		e := guest.Error(status, code, msg)
		return nil, &e
	}
	resp, err := guest.Fetch(guest.FetchRequest{
		URL:       base + "/vendor/agreements",
		Headers:   map[string]string{"X-Api-Key": apiKey, "Accept": "application/json"},
		TimeoutMS: int(vendorTimeout / time.Millisecond),
	})
	if err != nil {
		// egress_denied, timeout, transport… keep their codes.
		e := guest.ErrorFrom(err)
		return nil, &e
	}
	if resp.Status < 200 || resp.Status > 299 {
		guest.Log.Warnf("vendor answered %d", resp.Status)
		return fail(502, codeVendorError, fmt.Sprintf("vendor API answered HTTP %d", resp.Status))
	}
	var body struct {
		Agreements *[]Agreement `json:"agreements"`
	}
	if err := resp.DecodeJSON(&body); err != nil || body.Agreements == nil {
		return fail(502, codeVendorError, "vendor API answer is not {\"agreements\":[…]}")
	}
	agreements := *body.Agreements
	if len(agreements) > maxAgreements {
		return fail(502, codeTooManyRecords,
			fmt.Sprintf("vendor sent %d agreements; this extension syncs at most %d", len(agreements), maxAgreements))
	}
	seen := make(map[string]bool, len(agreements))
	for i, a := range agreements {
		if !validID(a.ID) {
			return fail(502, codeVendorError, fmt.Sprintf("vendor agreement %d has an invalid id", i))
		}
		if seen[a.ID] {
			return fail(502, codeVendorError, fmt.Sprintf("vendor sent agreement %q twice", a.ID))
		}
		seen[a.ID] = true
	}
	return agreements, nil
}

// validID accepts non-empty ids of printable characters up to maxIDLen
// bytes.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}
