package server

import (
	"testing"
	"time"
)

func TestHeavyInstallsStartDemoted(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	h := newHeavyInstalls(10 * time.Millisecond)
	h.now = func() time.Time { return now }

	if h.startDemoted("inst-a") {
		t.Fatal("an install never seen starts demoted")
	}
	h.observe("inst-a", 50*time.Millisecond, 0)
	if !h.startDemoted("inst-a") {
		t.Fatal("after a long call the install's next call does not start demoted")
	}
	if h.startDemoted("inst-b") {
		t.Fatal("inst-a's long call demotes inst-b")
	}

	now = now.Add(heavyFor - time.Millisecond)
	if !h.startDemoted("inst-a") {
		t.Fatal("heavy install forgotten before heavyFor")
	}
	now = now.Add(2 * time.Millisecond)
	if h.startDemoted("inst-a") {
		t.Fatal("heavy install still demoted past heavyFor with no long call since")
	}

	h.observe("inst-a", 50*time.Millisecond, 0)
	h.observe("inst-a", 2*time.Millisecond, 0)
	if h.startDemoted("inst-a") {
		t.Fatal("a call under the threshold does not clear the install")
	}

	h.observe("inst-c", time.Millisecond, 4<<20)
	if !h.startDemoted("inst-c") {
		t.Fatal("after a short call answering 4 MiB the install's next call does not start demoted")
	}

	off := newHeavyInstalls(0)
	off.observe("inst-a", time.Second, 0)
	if off.startDemoted("inst-a") {
		t.Fatal("with demotion off an install starts demoted")
	}
}
