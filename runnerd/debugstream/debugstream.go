// Package debugstream publishes guests' log lines to Redis streams (SPEC
// §6.3): one stream per tenant and extension (key from internal/debuglog),
// trimmed with `XADD … MAXLEN ~ 2000`, with the fields ts, level, stream,
// tenant, extension, install, request, version, content_hash, message and
// truncated. The gateway tails these streams for the debug SSE endpoint.
//
// Publish never blocks a request: lines go into a bounded queue that one
// goroutine drains with pipelined XADDs; a full queue or a Redis failure
// drops lines and counts them.
package debugstream

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/debuglog"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// Stream trimming and message bounds.
const (
	MaxLen          = 2000
	MaxMessageBytes = 4096
	queueSize       = 10000
	batchSize       = 256
)

type entry struct {
	key    string
	values []any
}

// Stream is the Redis publisher.
type Stream struct {
	rdb   *redis.Client
	queue chan entry
	log   *zap.Logger

	published, dropped atomic.Int64
}

// New connects lazily to the Redis URL (redis://host:port/db).
func New(redisURL string, log *zap.Logger) (*Stream, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Stream{rdb: redis.NewClient(opt), queue: make(chan entry, queueSize), log: log}, nil
}

// Published and Dropped count lines written and lines lost.
func (s *Stream) Published() int64 { return s.published.Load() }
func (s *Stream) Dropped() int64   { return s.dropped.Load() }

// Publish queues a call's log lines; it implements server.LogSink.
func (s *Stream) Publish(env *execapi.Request, lines []hostapi.LogLine) {
	c := env.Context
	key := debuglog.StreamKey(c.TenantID, c.ExtensionID)
	for _, l := range lines {
		msg, cut := hostapi.CutUTF8([]byte(l.Message), MaxMessageBytes)
		e := entry{key: key, values: []any{
			"ts", l.Time.UTC().Format(time.RFC3339Nano),
			"level", l.Level,
			"stream", l.Stream,
			"tenant", c.TenantID,
			"extension", c.ExtensionID,
			"install", c.InstallID,
			"request", c.RequestID,
			"version", c.VersionID,
			"content_hash", c.ContentHash,
			"message", string(msg),
			"truncated", strconv.FormatBool(l.Truncated || cut),
		}}
		select {
		case s.queue <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// Run drains the queue until ctx ends, then closes the client.
func (s *Stream) Run(ctx context.Context) {
	defer s.rdb.Close()
	for {
		var batch []entry
		select {
		case <-ctx.Done():
			return
		case e := <-s.queue:
			batch = append(batch, e)
		}
	more:
		for len(batch) < batchSize {
			select {
			case e := <-s.queue:
				batch = append(batch, e)
			default:
				break more
			}
		}
		s.write(ctx, batch)
	}
}

func (s *Stream) write(ctx context.Context, batch []entry) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for _, e := range batch {
		pipe.XAdd(wctx, &redis.XAddArgs{Stream: e.key, MaxLen: MaxLen, Approx: true, Values: e.values})
	}
	if _, err := pipe.Exec(wctx); err != nil {
		s.dropped.Add(int64(len(batch)))
		s.log.Warn("debug stream write failed", zap.Int("lines", len(batch)), zap.Error(err))
		return
	}
	s.published.Add(int64(len(batch)))
}
