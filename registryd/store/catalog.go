package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
)

// NewVersion is everything the publish pipeline commits for one bundle.
type NewVersion struct {
	Name, Publisher, Version string
	ContentHash              string
	Runtime                  string
	Signature                json.RawMessage // SIGNATURE JSON; nil when unsigned
	Manifest                 json.RawMessage
	Capabilities             []string
	Endpoints                []manifest.Endpoint
	UI                       *manifest.UI
	SBOM                     string
	StorageURL               string
	Size                     int64
}

// Publish commits the rows of a published bundle in one transaction. The
// registry row is locked first, so concurrent publishes of one extension
// serialise: of N identical publishes one creates (created=true) and the
// others find the same name+version+hash and succeed idempotently. The same
// name+version with another hash is version_exists; a name owned by another
// publisher is publisher_mismatch.
func (db *DB) Publish(ctx context.Context, nv NewVersion) (res *registryapi.PublishResult, err error) {
	endpoints := nv.Endpoints
	if endpoints == nil {
		endpoints = []manifest.Endpoint{}
	}
	epJSON, _ := json.Marshal(endpoints)
	var uiJSON []byte
	if nv.UI != nil {
		uiJSON, _ = json.Marshal(nv.UI)
	}
	caps := nv.Capabilities
	if caps == nil {
		caps = []string{}
	}
	res = &registryapi.PublishResult{ContentHash: nv.ContentHash}
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO extension_registry (name, publisher) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, nv.Name, nv.Publisher); err != nil {
			return err
		}
		var latest *string
		res.Extension.Name = nv.Name
		err := tx.QueryRow(ctx, `SELECT id::text, publisher, latest_version FROM extension_registry WHERE name = $1 FOR UPDATE`, nv.Name).
			Scan(&res.Extension.ID, &res.Extension.Publisher, &latest)
		if err != nil {
			return err
		}
		if res.Extension.Publisher != nv.Publisher {
			return &Error{Code: CodePublisherMismatch, Message: "extension name belongs to another publisher",
				Details: map[string]string{"extension": nv.Name, "publisher": res.Extension.Publisher}}
		}
		var existingHash string
		err = tx.QueryRow(ctx, `SELECT id::text, content_hash FROM extension_version WHERE registry_id = $1 AND semver = $2`, res.Extension.ID, nv.Version).
			Scan(&res.Version.ID, &existingHash)
		switch {
		case err == nil:
			if existingHash != nv.ContentHash {
				return &Error{Code: CodeVersionExists, Message: "version " + nv.Version + " is already published with another content hash",
					Details: map[string]string{"content_hash": existingHash}}
			}
			res.Version.Version = nv.Version
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO extension_bundle (content_hash, storage_url, size, runtime) VALUES ($1, $2, $3, $4) ON CONFLICT (content_hash) DO NOTHING`,
			nv.ContentHash, nv.StorageURL, nv.Size, nv.Runtime)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO extension_version (registry_id, semver, content_hash, signature, manifest, runtime, capabilities, endpoints, ui, sbom_ref)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, '')) RETURNING id::text`,
			res.Extension.ID, nv.Version, nv.ContentHash, nullJSON(nv.Signature), []byte(nv.Manifest), nv.Runtime, caps, epJSON, nullJSON(uiJSON), nv.SBOM).
			Scan(&res.Version.ID)
		if err != nil {
			return err
		}
		res.Version.Version = nv.Version
		res.Created = true
		if latest == nil || CompareSemver(nv.Version, *latest) > 0 {
			_, err = tx.Exec(ctx, `UPDATE extension_registry SET latest_version = $2 WHERE id = $1`, res.Extension.ID, nv.Version)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ListExtensions returns the catalog ordered by name.
func (db *DB) ListExtensions(ctx context.Context) ([]registryapi.Extension, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id::text, name, publisher, coalesce(latest_version, ''), deprecation, created_at FROM extension_registry ORDER BY name`)
	if err != nil {
		return nil, wrap(err)
	}
	out := []registryapi.Extension{}
	for rows.Next() {
		e, err := scanExtension(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, *e)
	}
	return out, wrap(rows.Err())
}

// GetExtension returns one catalog entry or not_found.
func (db *DB) GetExtension(ctx context.Context, name string) (*registryapi.Extension, error) {
	row := db.Pool.QueryRow(ctx, `SELECT id::text, name, publisher, coalesce(latest_version, ''), deprecation, created_at FROM extension_registry WHERE name = $1`, name)
	e, err := scanExtension(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Errorf(CodeNotFound, "extension %s not found", name)
	}
	return e, wrap(err)
}

func scanExtension(row pgx.Row) (*registryapi.Extension, error) {
	var (
		e   registryapi.Extension
		dep []byte
	)
	if err := row.Scan(&e.ID, &e.Name, &e.Publisher, &e.LatestVersion, &dep, &e.CreatedAt); err != nil {
		return nil, err
	}
	if len(dep) > 0 {
		e.Deprecation = new(registryapi.Deprecation)
		_ = json.Unmarshal(dep, e.Deprecation)
	}
	return &e, nil
}

const versionColumns = `v.id::text, r.name, v.semver, v.content_hash, v.runtime, v.capabilities, v.endpoints, v.ui, b.size, v.revoked_at, coalesce(v.revoke_reason, ''), v.created_at`

func scanVersion(row pgx.Row, extra ...any) (*registryapi.Version, error) {
	var (
		v       registryapi.Version
		ep, ui  []byte
		revoked *time.Time
		dests   = []any{&v.ID, &v.Extension, &v.Version, &v.ContentHash, &v.Runtime, &v.Capabilities, &ep, &ui, &v.Size, &revoked, &v.RevokeReason, &v.CreatedAt}
	)
	if err := row.Scan(append(dests, extra...)...); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(ep, &v.Endpoints)
	if v.Endpoints == nil {
		v.Endpoints = []manifest.Endpoint{}
	}
	v.UI = registryapi.UIRefFromJSON(ui)
	v.RevokedAt, v.Revoked = revoked, revoked != nil
	return &v, nil
}

// ListVersions returns an extension's versions, newest first (by semver).
func (db *DB) ListVersions(ctx context.Context, name string) ([]registryapi.Version, error) {
	if _, err := db.GetExtension(ctx, name); err != nil {
		return nil, err
	}
	rows, err := db.Pool.Query(ctx, `SELECT `+versionColumns+` FROM extension_version v
		JOIN extension_registry r ON r.id = v.registry_id JOIN extension_bundle b ON b.content_hash = v.content_hash
		WHERE r.name = $1`, name)
	if err != nil {
		return nil, wrap(err)
	}
	out := []registryapi.Version{}
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, *v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	sortVersionsDesc(out)
	return out, nil
}

// GetVersion returns one version with manifest and signature.
func (db *DB) GetVersion(ctx context.Context, name, version string) (*registryapi.Version, error) {
	var man, sig []byte
	row := db.Pool.QueryRow(ctx, `SELECT `+versionColumns+`, v.manifest, v.signature FROM extension_version v
		JOIN extension_registry r ON r.id = v.registry_id JOIN extension_bundle b ON b.content_hash = v.content_hash
		WHERE r.name = $1 AND v.semver = $2`, name, version)
	v, err := scanVersion(row, &man, &sig)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Errorf(CodeNotFound, "version %s of %s not found", version, name)
	}
	if err != nil {
		return nil, wrap(err)
	}
	v.Manifest, v.Signature = man, sig
	return v, nil
}

// Deprecate marks an extension deprecated and announces it on the feed.
func (db *DB) Deprecate(ctx context.Context, name, reason string) (*registryapi.Extension, error) {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		dep, _ := json.Marshal(registryapi.Deprecation{Reason: reason, At: db.now().UTC()})
		tag, err := tx.Exec(ctx, `UPDATE extension_registry SET deprecation = $2 WHERE name = $1`, name, dep)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return Errorf(CodeNotFound, "extension %s not found", name)
		}
		return addChange(ctx, tx, registryapi.ChangeDeprecated, "", name, "")
	})
	if err != nil {
		return nil, err
	}
	return db.GetExtension(ctx, name)
}

// Revoke revokes a version (idempotent: the first reason and time stay) and
// announces it on the feed. Resolve stops returning installs of it at once.
func (db *DB) Revoke(ctx context.Context, name, version, reason string) (*registryapi.Version, error) {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var hash string
		var already bool
		err := tx.QueryRow(ctx, `SELECT v.content_hash, v.revoked_at IS NOT NULL FROM extension_version v JOIN extension_registry r ON r.id = v.registry_id
			WHERE r.name = $1 AND v.semver = $2 FOR UPDATE OF v`, name, version).Scan(&hash, &already)
		if errors.Is(err, pgx.ErrNoRows) {
			return Errorf(CodeNotFound, "version %s of %s not found", version, name)
		}
		if err != nil || already {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE extension_version v SET revoked_at = now(), revoke_reason = $3 FROM extension_registry r
			WHERE r.id = v.registry_id AND r.name = $1 AND v.semver = $2`, name, version, reason)
		if err != nil {
			return err
		}
		return addChange(ctx, tx, registryapi.ChangeRevoked, "", name, hash)
	})
	if err != nil {
		return nil, err
	}
	return db.GetVersion(ctx, name, version)
}

// BundleStatus reports whether hash is a version of extension.
func (db *DB) BundleStatus(ctx context.Context, hash, extension string) (*registryapi.BundleStatus, error) {
	st := &registryapi.BundleStatus{ContentHash: hash, Extension: extension}
	var (
		revoked bool
		ui      []byte
	)
	err := db.Pool.QueryRow(ctx, `SELECT v.semver, v.revoked_at IS NOT NULL, v.ui FROM extension_version v JOIN extension_registry r ON r.id = v.registry_id
		WHERE v.content_hash = $1 AND r.name = $2`, hash, extension).Scan(&st.Version, &revoked, &ui)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return nil, wrap(err)
	}
	st.Published, st.Revoked = true, revoked
	st.UI = registryapi.UIRefFromJSON(ui)
	return st, nil
}

// CountPublishRows counts the rows a publish of hash creates, for tests of
// "no dangling rows".
func (db *DB) CountPublishRows(ctx context.Context, hash string) (bundles, versions int, err error) {
	err = db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM extension_bundle WHERE content_hash = $1), (SELECT count(*) FROM extension_version WHERE content_hash = $1)`, hash).
		Scan(&bundles, &versions)
	return bundles, versions, wrap(err)
}
