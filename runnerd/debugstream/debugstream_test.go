package debugstream

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/extedge/extedge/internal/debuglog"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/hostapi"
)

func TestLinesReachTheTenantsStream(t *testing.T) {
	srv := testenv.Redis(t)
	s, err := New(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	env := &execapi.Request{Context: execapi.Context{RequestID: "req-9", TenantID: "tenant-a", ExtensionID: "com.acme.x",
		InstallID: "inst-1", VersionID: "v1", ContentHash: "sha256:" + strings.Repeat("a", 64)}}
	long := strings.Repeat("é", MaxMessageBytes) // 2 bytes each: must be cut at a rune boundary
	s.Publish(env, []hostapi.LogLine{
		{Time: time.Now(), Level: "info", Stream: "log", Message: "hello"},
		{Time: time.Now(), Level: "warn", Stream: "stderr", Message: long},
	})
	for i := 0; i < 2500; i++ {
		s.Publish(env, []hostapi.LogLine{{Time: time.Now(), Level: "info", Stream: "log", Message: fmt.Sprint(i)}})
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if got := s.Published(); got != 2502 {
			return fmt.Errorf("published %d of 2502 (dropped %d)", got, s.Dropped())
		}
		return nil
	})
	n, err := rdb.XLen(context.Background(), "ext-debug:tenant-a:com.acme.x").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < MaxLen || n > MaxLen+200 {
		t.Fatalf("stream length %d, want about %d (MAXLEN ~)", n, MaxLen)
	}
	if other, _ := rdb.XLen(context.Background(), "ext-debug:tenant-b:com.acme.x").Result(); other != 0 {
		t.Fatal("lines leaked into another tenant's stream")
	}
	// The first two entries are trimmed away by now; publish them again
	// alone on a fresh stream to check the fields.
	env.Context.ExtensionID = "com.acme.fields"
	s.Publish(env, []hostapi.LogLine{{Time: time.Now(), Level: "warn", Stream: "stderr", Message: long}})
	testenv.WaitFor(t, 5*time.Second, func() error {
		if n, _ := rdb.XLen(context.Background(), debuglog.StreamKey("tenant-a", "com.acme.fields")).Result(); n != 1 {
			return fmt.Errorf("fields stream has %d entries", n)
		}
		return nil
	})
	msgs, err := rdb.XRange(context.Background(), debuglog.StreamKey("tenant-a", "com.acme.fields"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	v := msgs[0].Values
	for _, f := range []string{"ts", "level", "stream", "tenant", "extension", "install", "request", "version", "content_hash", "message", "truncated"} {
		if _, ok := v[f]; !ok {
			t.Errorf("field %q missing", f)
		}
	}
	msg := v["message"].(string)
	if len(msg) > MaxMessageBytes || !utf8.ValidString(msg) || v["truncated"] != "true" || v["request"] != "req-9" {
		t.Fatalf("entry %v (message %d bytes)", v, len(msg))
	}
}
