package store

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/registryapi"
)

// ChangesSince returns up to limit change-feed events with id > after, in
// id order. change_log is platform data (not tenant-scoped): the feed is
// for service tokens only.
func (db *DB) ChangesSince(ctx context.Context, after int64, limit int) ([]registryapi.Change, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id, type, coalesce(tenant_id, ''), coalesce(extension, ''), coalesce(content_hash, '')
		FROM change_log WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (registryapi.Change, error) {
		var c registryapi.Change
		err := r.Scan(&c.ID, &c.Type, &c.TenantID, &c.Extension, &c.ContentHash)
		return c, err
	})
	return out, wrap(err)
}

// LatestChangeID is the id of the newest change (0 when none).
func (db *DB) LatestChangeID(ctx context.Context) (int64, error) {
	var id int64
	err := db.Pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM change_log`).Scan(&id)
	return id, wrap(err)
}

// Feed wakes change-feed subscribers when change_log grows. It holds one
// dedicated connection that LISTENs on extedge_changes (notified by a
// trigger at commit); subscribers then read change_log from their own
// position, so a missed wake-up can delay an event but never lose it.
// While the listening connection is down, subscribers are woken every
// fallbackPoll instead.
type Feed struct {
	db  *DB
	log *zap.Logger

	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// fallbackPoll is the wake-up interval while LISTEN is not established.
const fallbackPoll = 500 * time.Millisecond

// NewFeed returns a feed (log may be nil); call Run to start listening.
func NewFeed(db *DB, log *zap.Logger) *Feed {
	if log == nil {
		log = zap.NewNop()
	}
	return &Feed{db: db, log: log, subs: make(map[chan struct{}]struct{})}
}

// Subscribe returns a channel that receives a value after new changes may
// have been committed, and a function to unsubscribe.
func (f *Feed) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

func (f *Feed) wakeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run listens until ctx ends, reconnecting with a jittered backoff (100 ms
// doubling to 5 s, ±50 %), so replicas that lost Postgres together do not
// reconnect in step.
func (f *Feed) Run(ctx context.Context) {
	wait := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Second}
	for ctx.Err() == nil {
		err := f.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("change feed listener lost", zap.Error(err))
		// Poll while reconnecting so subscribers still see changes.
		deadline := time.Now().Add(wait.NextBackOff())
		for time.Now().Before(deadline) {
			f.wakeAll()
			select {
			case <-ctx.Done():
				return
			case <-time.After(fallbackPoll):
			}
		}
	}
}

func (f *Feed) listen(ctx context.Context) error {
	pc, err := f.db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection ends up in LISTEN state; it never goes back to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN extedge_changes"); err != nil {
		return err
	}
	f.wakeAll() // changes may have happened while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		f.wakeAll()
	}
}
