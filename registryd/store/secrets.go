package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ResealStats counts what ResealSecrets did.
type ResealStats struct {
	// Examined is the number of stored secrets looked at.
	Examined int64
	// Resealed is the number rewritten; the rest were already sealed as
	// wanted.
	Resealed int64
	// Batches is the number of committed transactions.
	Batches int64
}

// ResealSecrets passes every stored secret value (its ciphertext and its
// SecretAAD) to reseal and stores what reseal returns when it reports a
// change. Rows go in key order, batchSize rows per transaction (platform
// scope, rows locked against concurrent writes), so each batch is atomic
// and a run that stops half way leaves whole batches done; a rerun passes
// every row to reseal again, which skips those already done. The first
// error stops the run: earlier batches stay committed, the failing one is
// rolled back. Secret values, plaintext or sealed, never appear in errors.
func (db *DB) ResealSecrets(ctx context.Context, batchSize int, reseal func(sealed, aad string) (string, bool, error)) (ResealStats, error) {
	if batchSize <= 0 {
		return ResealStats{}, fmt.Errorf("batch size %d: want at least 1", batchSize)
	}
	var (
		stats                         ResealStats
		lastTenant, lastInstall, last string
		started                       bool
	)
	for {
		var n, resealed int64
		err := db.inTenant(ctx, platformScope, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT tenant_id, install_id::text, key, sealed FROM tenant_extension_secret
				WHERE NOT $1 OR (tenant_id, install_id, key) > ($2, $3::uuid, $4)
				ORDER BY tenant_id, install_id, key LIMIT $5 FOR UPDATE`,
				started, lastTenant, nullUUID(lastInstall), last, batchSize)
			if err != nil {
				return err
			}
			type row struct{ tenant, install, key, sealed string }
			batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				var x row
				err := r.Scan(&x.tenant, &x.install, &x.key, &x.sealed)
				return x, err
			})
			if err != nil {
				return err
			}
			resealed = 0
			for _, x := range batch {
				out, changed, err := reseal(x.sealed, SecretAAD(x.tenant, x.install, x.key))
				if err != nil {
					return fmt.Errorf("secret %q of install %s (tenant %s): %w", x.key, x.install, x.tenant, err)
				}
				if !changed {
					continue
				}
				if _, err := tx.Exec(ctx, `UPDATE tenant_extension_secret SET sealed = $4 WHERE tenant_id = $1 AND install_id = $2 AND key = $3`,
					x.tenant, x.install, x.key, out); err != nil {
					return err
				}
				resealed++
			}
			n = int64(len(batch))
			if n > 0 {
				lastTenant, lastInstall, last = batch[n-1].tenant, batch[n-1].install, batch[n-1].key
			}
			return nil
		})
		if err != nil {
			return stats, err
		}
		if n == 0 {
			return stats, nil
		}
		started = true
		stats.Examined += n
		stats.Resealed += resealed
		stats.Batches++
		if n < int64(batchSize) {
			return stats, nil
		}
	}
}

// nullUUID is a placeholder uuid before the first batch (the comparison
// is then skipped).
func nullUUID(s string) string {
	if s == "" {
		return "00000000-0000-0000-0000-000000000000"
	}
	return s
}
