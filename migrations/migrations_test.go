package migrations_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestApply(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	all, _ := migrations.All()

	t.Run("concurrent runs apply each migration exactly once", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make([][]string, 5)
		errs := make([]error, 5)
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = migrations.Apply(ctx, pool)
			}()
		}
		wg.Wait()
		total := 0
		for i := range 5 {
			if errs[i] != nil {
				t.Fatalf("run %d: %v", i, errs[i])
			}
			total += len(results[i])
		}
		if total != len(all) {
			t.Fatalf("applied %d migrations in total, want %d", total, len(all))
		}
	})
	t.Run("a second run is a no-op", func(t *testing.T) {
		got, err := migrations.Apply(ctx, pool)
		if err != nil || len(got) != 0 {
			t.Fatalf("Apply again = %v, %v; want nothing", got, err)
		}
		applied, err := migrations.Applied(ctx, pool)
		if err != nil || len(applied) != len(all) {
			t.Fatalf("Applied = %v, %v", applied, err)
		}
	})
	t.Run("Check accepts the schema Apply left", func(t *testing.T) {
		if err := migrations.Check(ctx, pool); err != nil {
			t.Fatalf("Check after Apply: %v", err)
		}
	})
	t.Run("Check on an empty database lists every migration as pending", func(t *testing.T) {
		empty, err := pgxpool.New(ctx, pg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		defer empty.Close()
		var se *migrations.SchemaError
		if err := migrations.Check(ctx, empty); !errors.As(err, &se) || se.Database != "" || len(se.Pending) != len(all) || se.Binary != all[len(all)-1].Version {
			t.Fatalf("Check on an empty database = %#v", err)
		}
	})
	t.Run("a query without the tenant setting sees nothing", func(t *testing.T) {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT set_config('extedge.tenant', 't1', true)")
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO extension_quota_usage (tenant_id, extension_id, window_start, invocations) VALUES ('t1', 'e', now(), 1)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM extension_quota_usage").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("without tenant setting: %d rows visible, want 0", n)
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('extedge.tenant', 't2', true)"); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "SELECT count(*) FROM extension_quota_usage").Scan(&n)
		})
		if err != nil || n != 0 {
			t.Fatalf("as another tenant: %d rows, err %v; want 0", n, err)
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('extedge.tenant', 't2', true)"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO extension_quota_usage (tenant_id, extension_id, window_start, invocations) VALUES ('t1', 'e', now(), 1)`)
			return err
		})
		if err == nil {
			t.Fatal("writing another tenant's row was allowed")
		}
	})
}
