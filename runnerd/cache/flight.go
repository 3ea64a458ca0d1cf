package cache

import (
	"context"

	"golang.org/x/sync/singleflight"
)

// shared runs fn once for concurrent callers of the same key and waits for
// its result only until ctx ends: a caller whose deadline passes returns
// ctx's error at once, while the work carries on for the callers still
// waiting and for the cache. fn must therefore not depend on any one
// caller's context.
func shared[T any](ctx context.Context, g *singleflight.Group, key string, fn func() (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) { return fn() })
	select {
	case r := <-ch:
		if r.Err != nil {
			var zero T
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
