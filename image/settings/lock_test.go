package settings

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLockHoldsOffASecondWriterUntilUnlocked(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "sensord.conf")
	unlock, err := Lock(conf)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		u, err := Lock(conf)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("a second writer got the lock while the first held it")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-got:
		if u != nil {
			u()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second writer did not get the lock once it was released")
	}
}
