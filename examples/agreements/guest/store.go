package main

import (
	"sort"

	"github.com/extedge/extedge/sdk/guest"
)

// Layout of the extension's state in storage.kv. Every agreement is one
// record; the meta record lists their ids in order, so a page is one meta
// read plus one read per row, whatever the page number.
const (
	namespace       = "agreements"
	agreementPrefix = "agreement:"
	metaKey         = "meta"
)

// Agreement is one service agreement, as the vendor sends it and as the UI
// shows it.
type Agreement struct {
	ID            string  `json:"id"`
	Client        string  `json:"client"`
	Name          string  `json:"name"`
	Status        string  `json:"status"`
	MonthlyAmount float64 `json:"monthly_amount"`
}

// meta is the index record: the ids of all stored agreements, sorted
// bytewise, and when the last sync finished (RFC 3339, UTC).
type meta struct {
	IDs      []string `json:"ids"`
	SyncedAt string   `json:"synced_at,omitempty"`
}

func agreementKey(id string) string { return agreementPrefix + id }

// loadMeta returns the index; before the first sync it is empty.
func loadMeta() (meta, error) {
	it, err := guest.KV.Get(namespace, metaKey)
	if guest.IsCode(err, guest.CodeNotFound) {
		return meta{IDs: []string{}}, nil
	}
	if err != nil {
		return meta{}, err
	}
	var m meta
	if err := it.Decode(&m); err != nil {
		return meta{}, err
	}
	if m.IDs == nil {
		m.IDs = []string{}
	}
	return m, nil
}

// loadAgreement reads one agreement; a missing one is a not_found
// *guest.HostError.
func loadAgreement(id string) (Agreement, error) {
	it, err := guest.KV.Get(namespace, agreementKey(id))
	if err != nil {
		return Agreement{}, err
	}
	var a Agreement
	if err := it.Decode(&a); err != nil {
		return Agreement{}, err
	}
	return a, nil
}

// replaceAll makes the store mirror agreements: it writes every record,
// then the index, then deletes the records the index no longer names. A
// sync that stops half-way therefore never leaves the index pointing at a
// missing record; at worst some stale records linger until the next sync.
// Concurrent syncs are last-writer-wins, which is harmless because both
// write what the vendor said.
func replaceAll(agreements []Agreement, syncedAt string) error {
	old, err := loadMeta()
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(agreements))
	keep := make(map[string]bool, len(agreements))
	for _, a := range agreements {
		if _, err := guest.KV.Put(namespace, agreementKey(a.ID), a); err != nil {
			return err
		}
		ids = append(ids, a.ID)
		keep[a.ID] = true
	}
	sort.Strings(ids)
	if _, err := guest.KV.Put(namespace, metaKey, meta{IDs: ids, SyncedAt: syncedAt}); err != nil {
		return err
	}
	for _, id := range old.IDs {
		if keep[id] {
			continue
		}
		if _, err := guest.KV.Delete(namespace, agreementKey(id)); err != nil && !guest.IsCode(err, guest.CodeNotFound) {
			return err
		}
	}
	return nil
}
