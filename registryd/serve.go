package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/tlsconf"
	"github.com/extedge/extedge/migrations"
	"github.com/extedge/extedge/registryd/api"
	"github.com/extedge/extedge/registryd/publish"
	"github.com/extedge/extedge/registryd/store"
)

// serveFlags are `registryd serve`'s options.
type serveFlags struct {
	listen         string
	databaseURL    string // --database-url or the content of --database-url-file
	bundleStore    string
	trustBundle    string
	secretsKeyFile string
	allowUnsigned  bool
	migrate        bool
	logLevel       string
	maxBundleBytes int64
	kvMaxRecords   int64
	kvMaxBytes     int64
	envelopeTTL    time.Duration
	tempDir        string
	logRetention   time.Duration
	eventRetention time.Duration
	eventAttempts  int
	eventBackoff   time.Duration
	dbWait         time.Duration
	tlsCert        string
	tlsKey         string
}

func parseServeFlags(args []string, stderr io.Writer) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7070", "host:port to serve on")
	database := addDatabaseFlags(fs)
	fs.StringVar(&f.bundleStore, "bundle-store", "", "blob store URL: file:///dir or s3://bucket?endpoint=… (empty: STORAGE_S3_* variables)")
	fs.StringVar(&f.trustBundle, "trust-bundle", "", "PEM file of trusted publisher keys and certificates")
	fs.StringVar(&f.secretsKeyFile, "secrets-key-file", "", "file with the secrets key-encryption key (registryd secrets-key generate)")
	fs.BoolVar(&f.allowUnsigned, "allow-unsigned", false, "accept unsigned bundles (development only; logged loudly; no variable: it must be explicit)")
	fs.BoolVar(&f.migrate, "migrate", false, "apply migrations before serving (always on in embedded mode)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Int64Var(&f.maxBundleBytes, "max-bundle-bytes", bundle.DefaultLimits().MaxCompressed, "largest accepted bundle upload")
	fs.Int64Var(&f.kvMaxRecords, "kv-max-records", store.DefaultKVMaxRecords, "KV quota: records per install")
	fs.Int64Var(&f.kvMaxBytes, "kv-max-bytes", store.DefaultKVMaxBytes, "KV quota: value bytes per install")
	fs.DurationVar(&f.envelopeTTL, "envelope-ttl", 10*time.Minute, "lifetime of secret envelopes in resolve replies")
	fs.DurationVar(&f.logRetention, "execution-log-retention", 30*24*time.Hour, "how long execution records are kept (0: forever; per-minute usage is kept)")
	fs.DurationVar(&f.eventRetention, "event-retention", 30*24*time.Hour, "how long published events and their finished deliveries are kept, which is also how long an event id stays idempotent (0: forever)")
	fs.IntVar(&f.eventAttempts, "event-max-attempts", store.DefaultDeliveryPolicy().MaxAttempts, "attempts of an event delivery before it is dead (1 to 100)")
	fs.DurationVar(&f.eventBackoff, "event-backoff", store.DefaultDeliveryPolicy().BaseBackoff, "delay after a delivery's first failed attempt, doubled after each further one (capped at 1h, ±20% jitter)")
	fs.DurationVar(&f.dbWait, "database-wait", 30*time.Second, "how long to retry connecting to an external database at startup")
	fs.StringVar(&f.tempDir, "tmp-dir", "", "directory for uploads being checked (default: system temp)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with; needs --tls-key (default: plain HTTP)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	if err := parseFlags(fs, args, "allow-unsigned"); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected arguments %v", fs.Args())
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return nil, fmt.Errorf("--listen %q: want host:port", f.listen)
	}
	if f.eventAttempts < 1 || f.eventAttempts > 100 {
		return nil, fmt.Errorf("--event-max-attempts %d: want 1 to 100", f.eventAttempts)
	}
	if f.eventBackoff < time.Second || f.eventBackoff > time.Hour {
		return nil, fmt.Errorf("--event-backoff %s: want 1s to 1h", f.eventBackoff)
	}
	url, err := database.resolve()
	if err != nil {
		return nil, err
	}
	f.databaseURL = url
	return f, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

// cmdServe is `registryd serve`.
func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck

	tlsConfig, err := tlsconf.Server(f.tlsCert, f.tlsKey)
	if err != nil {
		return err
	}
	blobs, err := blobstore.Open(f.bundleStore)
	if err != nil {
		return fmt.Errorf("--bundle-store: %v", err)
	}
	var trust *signing.TrustBundle
	if f.trustBundle != "" {
		if trust, err = signing.LoadTrustBundle(f.trustBundle); err != nil {
			return fmt.Errorf("--trust-bundle: %v", err)
		}
	} else if !f.allowUnsigned {
		log.Warn("no --trust-bundle: every publish will fail with untrusted_key")
	}
	var keys *secretbox.Keys
	if f.secretsKeyFile != "" {
		if keys, err = secretbox.LoadKeyFile(f.secretsKeyFile); err != nil {
			return fmt.Errorf("--secrets-key-file: %v", err)
		}
	} else {
		log.Warn("no --secrets-key-file: installs cannot have secrets")
	}
	if f.allowUnsigned {
		log.Warn("--allow-unsigned IS ON: unsigned bundles will be accepted; never run production like this")
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	d, err := openDatabaseWait(ctx, f.databaseURL, f.migrate, f.dbWait, log)
	if err != nil {
		return err
	}
	defer d.Close()
	// Without --migrate (or after it, a schema a newer registryd wrote) the
	// binary and the schema must agree before the first request.
	if err := migrations.Check(ctx, d.db.Pool); err != nil {
		return err
	}
	if d.pg != nil {
		log.Info("embedded postgres ready", zap.String("dir", d.pg.Dir), zap.Bool("started_here", d.pg.Owned()))
	}
	if d.db.Bypass {
		log.Warn("the database role is a superuser or has BYPASSRLS: row-level security is NOT in effect; use a plain role")
	}

	feed := store.NewFeed(d.db, log.Named("feed"))
	pipeline := publish.New(d.db, publish.Config{
		Blobs: blobs, Trust: trust, AllowUnsigned: f.allowUnsigned,
		Limits: bundle.Limits{MaxCompressed: f.maxBundleBytes}, TempDir: f.tempDir,
		Log: log.Named("publish"),
	})
	srv := api.New(api.Config{
		DB: d.db, Publish: pipeline, Feed: feed, Keys: keys,
		KVQuota:     store.KVQuota{MaxRecords: f.kvMaxRecords, MaxBytes: f.kvMaxBytes},
		EnvelopeTTL: f.envelopeTTL, Log: log.Named("api"), ExecutionLogRetention: f.logRetention,
		EventRetention: f.eventRetention,
		Delivery:       store.DeliveryPolicy{MaxAttempts: f.eventAttempts, BaseBackoff: f.eventBackoff},
	})

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // publish extends its own deadline
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	go feed.Run(bg)
	go srv.RunJanitor(bg, time.Minute)

	errc := make(chan error, 1)
	scheme := "http"
	if tlsConfig != nil {
		// ServeTLS, not a tls.NewListener: it also offers HTTP/2.
		scheme = "https"
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	log.Info("registryd serving", zap.String("listen", ln.Addr().String()), zap.String("scheme", scheme), zap.String("bundle_store", blobs.String()))

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// SSE streams never finish on their own: cancel background work first
	// so Shutdown only waits for ordinary requests.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cancelBG()
	srv.CloseStreams()
	go func() {
		<-shutdownCtx.Done()
		hs.Close()
	}()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", zap.Error(err))
	}
	return nil
}
