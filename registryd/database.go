package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/pgembed"
	"github.com/extedge/extedge/migrations"
	"github.com/extedge/extedge/registryd/store"
)

// embeddedPrefix selects embedded mode in --database-url.
const embeddedPrefix = "embedded:"

// Embedded mode names: the application role (no superuser, no BYPASSRLS)
// and its database.
const (
	embeddedRole     = "extedge"
	embeddedDatabase = "extedge"
)

// database is an open registry database and what keeps it running.
type database struct {
	db *store.DB
	pg *pgembed.Server // nil unless embedded
}

// Close closes the pool and, in embedded mode, stops PostgreSQL if this
// process started it.
func (d *database) Close() {
	if d.db != nil {
		d.db.Close()
	}
	if d.pg != nil {
		d.pg.Stop()
	}
}

// openDatabaseWait is openDatabase, retried while an external database is
// unreachable (it may be starting next to registryd) for up to wait.
func openDatabaseWait(ctx context.Context, url string, migrate bool, wait time.Duration, log *zap.Logger) (*database, error) {
	deadline := time.Now().Add(wait)
	for {
		d, err := openDatabase(ctx, url, migrate)
		if err == nil || strings.HasPrefix(url, embeddedPrefix) || time.Now().After(deadline) || ctx.Err() != nil {
			return d, err
		}
		log.Warn("database not reachable yet; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// openDatabase resolves --database-url: in embedded mode it starts (or
// attaches to) the private server, creates the role and database, and
// always migrates; otherwise it migrates only when asked.
func openDatabase(ctx context.Context, url string, migrate bool) (*database, error) {
	if url == "" {
		return nil, errors.New("no database URL") // databaseFlags.resolve explains the flags
	}
	d := &database{}
	if dir, ok := strings.CutPrefix(url, embeddedPrefix); ok {
		if dir == "" {
			return nil, errors.New("embedded: needs a directory, e.g. embedded:/var/lib/extedge/pg")
		}
		pg, err := pgembed.Start(ctx, pgembed.Options{Dir: dir})
		if err != nil {
			return nil, err
		}
		d.pg = pg
		if err := pg.EnsureRole(ctx, embeddedRole); err != nil {
			d.Close()
			return nil, err
		}
		if err := pg.EnsureDatabase(ctx, embeddedDatabase, embeddedRole); err != nil {
			d.Close()
			return nil, err
		}
		url = pg.URL(embeddedRole, embeddedDatabase)
		migrate = true
	}
	db, err := store.Open(ctx, url)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.db = db
	if migrate {
		if _, err := migrations.Apply(ctx, db.Pool); err != nil {
			d.Close()
			return nil, fmt.Errorf("migrating: %v", err)
		}
	}
	return d, nil
}
