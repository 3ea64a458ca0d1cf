// Package records ships execution records (SPEC §6.3, §7.7) from the
// runner to registryd in batches. Add never blocks a request: records go
// into a bounded queue, and when it is full they are dropped and counted.
package records

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/registryapi"
)

// Poster sends a batch; *registryapi.Client implements it.
type Poster interface {
	PostExecutions(ctx context.Context, recs []registryapi.ExecutionRecord) error
}

// Config tunes the batcher.
type Config struct {
	// QueueSize bounds records waiting to be sent. Default: 10 000.
	QueueSize int
	// BatchSize is the most records per request. Default: 500.
	BatchSize int
	// FlushEvery sends a partial batch after this long. Default: 1s.
	FlushEvery time.Duration
	// Attempts per batch before it is dropped. Default: 3.
	Attempts int
	// Logger logs failed batches. Default: no-op.
	Logger *zap.Logger
}

// Batcher queues records and posts them in batches.
type Batcher struct {
	cfg   Config
	post  Poster
	queue chan registryapi.ExecutionRecord

	sent, dropped, failed atomic.Int64
}

// New returns a batcher; Run sends.
func New(p Poster, cfg Config) *Batcher {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Batcher{cfg: cfg, post: p, queue: make(chan registryapi.ExecutionRecord, cfg.QueueSize)}
}

// Add queues a record, or drops and counts it when the queue is full.
func (b *Batcher) Add(rec registryapi.ExecutionRecord) {
	select {
	case b.queue <- rec:
	default:
		b.dropped.Add(1)
	}
}

// Sent, Dropped and Failed count records posted, dropped at a full queue,
// and dropped after failed attempts.
func (b *Batcher) Sent() int64    { return b.sent.Load() }
func (b *Batcher) Dropped() int64 { return b.dropped.Load() }
func (b *Batcher) Failed() int64  { return b.failed.Load() }

// Run sends batches until ctx ends, then flushes what is queued (bounded
// by a few seconds, so shutdown is not held up by a dead registry).
func (b *Batcher) Run(ctx context.Context) {
	t := time.NewTicker(b.cfg.FlushEvery)
	defer t.Stop()
	batch := make([]registryapi.ExecutionRecord, 0, b.cfg.BatchSize)
	for {
		select {
		case rec := <-b.queue:
			batch = append(batch, rec)
			if len(batch) >= b.cfg.BatchSize {
				batch = b.send(ctx, batch)
			}
		case <-t.C:
			if len(batch) > 0 {
				batch = b.send(ctx, batch)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			for {
				select {
				case rec := <-b.queue:
					batch = append(batch, rec)
					if len(batch) >= b.cfg.BatchSize {
						batch = b.send(fctx, batch)
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				b.send(fctx, batch)
			}
			return
		}
	}
}

func (b *Batcher) send(ctx context.Context, batch []registryapi.ExecutionRecord) []registryapi.ExecutionRecord {
	var err error
	wait := registryapi.ReconnectBackoff()
	for attempt := 0; attempt < b.cfg.Attempts; attempt++ {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = b.post.PostExecutions(pctx, batch)
		cancel()
		if err == nil {
			b.sent.Add(int64(len(batch)))
			return batch[:0]
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait.NextBackOff()):
		}
	}
	b.failed.Add(int64(len(batch)))
	b.cfg.Logger.Warn("dropping execution records after failed posts", zap.Int("records", len(batch)), zap.Error(err))
	return batch[:0]
}
