package main

import (
	"cmp"
	"slices"
	"strings"

	"github.com/extedge/extedge/sdk/guest"
)

// Layout of the extension's state in storage.kv. Every agreement is one
// record; the meta record lists their ids in order and, for every other
// sort column, the order of those ids by that column, so a page is one
// meta read plus one read per row, whatever the page number and the sort.
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
// bytewise; Order[column] the positions in IDs sorted by that column
// (ties by id) for every sort column but "id"; and when the last sync
// finished (RFC 3339, UTC).
type meta struct {
	IDs      []string         `json:"ids"`
	Order    map[string][]int `json:"order,omitempty"`
	SyncedAt string           `json:"synced_at,omitempty"`
}

// sortColumns are the columns list sorts by (the "sort" query parameter),
// each with its ascending order; ties are broken by id.
var sortColumns = map[string]func(a, b Agreement) int{
	"id":             func(a, b Agreement) int { return 0 },
	"client":         func(a, b Agreement) int { return strings.Compare(a.Client, b.Client) },
	"name":           func(a, b Agreement) int { return strings.Compare(a.Name, b.Name) },
	"status":         func(a, b Agreement) int { return strings.Compare(a.Status, b.Status) },
	"monthly_amount": func(a, b Agreement) int { return cmp.Compare(a.MonthlyAmount, b.MonthlyAmount) },
}

// sortColumnNames lists sortColumns for error messages, in a fixed order.
const sortColumnNames = "id, client, name, status, monthly_amount"

// sortAgreements sorts agreements by column (ascending, ties by id).
func sortAgreements(agreements []Agreement, column string) {
	by := sortColumns[column]
	slices.SortStableFunc(agreements, func(a, b Agreement) int {
		return cmp.Or(by(a, b), strings.Compare(a.ID, b.ID))
	})
}

// buildIndex returns the index of agreements: ids sorted bytewise and the
// order of every other sort column.
func buildIndex(agreements []Agreement, syncedAt string) meta {
	byID := slices.Clone(agreements)
	sortAgreements(byID, "id")
	m := meta{IDs: make([]string, len(byID)), Order: map[string][]int{}, SyncedAt: syncedAt}
	pos := make(map[string]int, len(byID))
	for i, a := range byID {
		m.IDs[i] = a.ID
		pos[a.ID] = i
	}
	for column := range sortColumns {
		if column == "id" {
			continue
		}
		sorted := slices.Clone(byID)
		sortAgreements(sorted, column)
		order := make([]int, len(sorted))
		for i, a := range sorted {
			order[i] = pos[a.ID]
		}
		m.Order[column] = order
	}
	return m
}

// orderedIDs returns the index's ids sorted by column, descending when
// desc. An index written before Order existed lacks the column; then the
// records are read once to sort them (at most maxAgreements reads).
func orderedIDs(m meta, column string, desc bool) ([]string, error) {
	ids := slices.Clone(m.IDs)
	if order, ok := m.Order[column]; column != "id" && (!ok || len(order) != len(m.IDs)) {
		all := make([]Agreement, 0, len(m.IDs))
		for _, id := range m.IDs {
			a, err := loadAgreement(id)
			if guest.IsCode(err, guest.CodeNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			all = append(all, a)
		}
		m = buildIndex(all, m.SyncedAt)
		ids = m.IDs
	}
	if order := m.Order[column]; column != "id" {
		sorted := make([]string, len(order))
		for i, p := range order {
			sorted[i] = ids[p]
		}
		ids = sorted
	}
	if desc {
		slices.Reverse(ids)
	}
	return ids, nil
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
	keep := make(map[string]bool, len(agreements))
	for _, a := range agreements {
		if _, err := guest.KV.Put(namespace, agreementKey(a.ID), a); err != nil {
			return err
		}
		keep[a.ID] = true
	}
	if _, err := guest.KV.Put(namespace, metaKey, buildIndex(agreements, syncedAt)); err != nil {
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
