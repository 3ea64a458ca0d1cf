package main

import (
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/extedge/extedge/sdk/guest"
)

// topicAgreementUpdated is the event the PSA publishes when an agreement
// changes; the manifest subscribes dist/handlers/on_agreement_updated to
// it, which the entry module serves through guest.OnEvent.
const topicAgreementUpdated = "agreement.updated"

// indexAttempts bounds the retries of the index write when a concurrent
// delivery or sync wrote it first. Every delivery of the topic writes the
// one index record, so a runner's concurrent deliveries collide often;
// retrying at once kept losing in step (bench/events: 20 immediate
// attempts still failed 1 % of 4 concurrent updates), so each retry
// waits a random while, growing with the attempt.
const indexAttempts = 20

// onAgreementUpdated stores the agreement the event's payload carries
// (the vendor's shape; id required) and puts its id in the index. An
// event whose agreement is already stored as sent changes nothing, so a
// redelivery is harmless. An error makes the platform retry the delivery.
func onAgreementUpdated(ev *guest.Event) error {
	var a Agreement
	if err := ev.DecodePayload(&a); err != nil {
		return err
	}
	if !validID(a.ID) {
		return errors.New(topicAgreementUpdated + ": payload has no valid id")
	}
	old, err := loadAgreement(a.ID)
	switch {
	case err == nil && old == a:
		return nil
	case err != nil && !guest.IsCode(err, guest.CodeNotFound):
		return err
	}
	if _, err := guest.KV.Put(namespace, agreementKey(a.ID), a); err != nil {
		return err
	}
	guest.Log.Info("agreement " + a.ID + " updated by event " + ev.ID)
	return reindex(a)
}

// reindex rewrites the index with a in it, conditional on the index's
// revision so a concurrent writer's ids are never lost: on a lost race it
// reads again. Every sort column may have changed, so the order is
// rebuilt from the stored records (at most maxAgreements reads).
func reindex(a Agreement) error {
	for attempt := range indexAttempts {
		if attempt > 0 {
			time.Sleep(time.Duration(rand.IntN(10*attempt)+1) * time.Millisecond)
		}
		m, rev, err := loadMetaRevision()
		if err != nil {
			return err
		}
		ids := m.IDs
		if !slices.Contains(ids, a.ID) {
			ids = append(slices.Clone(ids), a.ID)
		}
		all := make([]Agreement, 0, len(ids))
		for _, id := range ids {
			if id == a.ID {
				all = append(all, a)
				continue
			}
			other, err := loadAgreement(id)
			if guest.IsCode(err, guest.CodeNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			all = append(all, other)
		}
		_, err = guest.KV.Put(namespace, metaKey, buildIndex(all, m.SyncedAt), guest.IfRevision(rev))
		if !guest.IsCode(err, guest.CodeRevisionMismatch) {
			return err
		}
	}
	return errors.New("the agreement index kept changing; retrying later")
}

// loadMetaRevision is loadMeta with the index's revision (0 before the
// first write, which IfRevision(0) turns into create-only).
func loadMetaRevision() (meta, int64, error) {
	it, err := guest.KV.Get(namespace, metaKey)
	if guest.IsCode(err, guest.CodeNotFound) {
		return meta{IDs: []string{}}, 0, nil
	}
	if err != nil {
		return meta{}, 0, err
	}
	var m meta
	if err := it.Decode(&m); err != nil {
		return meta{}, 0, err
	}
	if m.IDs == nil {
		m.IDs = []string{}
	}
	return m, it.Revision, nil
}
