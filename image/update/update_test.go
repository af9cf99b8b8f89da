package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func bundle(t testing.TB, key ed25519.PrivateKey, payload []byte, kernel string) []byte {
	var b bytes.Buffer
	m := Manifest{Compatible: Compatible, Version: "v2", Kernel: kernel}
	if err := Write(&b, m, bytes.NewReader(payload), key); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestBundleRoundTripAndRefusals(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	payload := bytes.Repeat([]byte("squashfs"), 1000)
	good := bundle(t, key, payload, "k1")
	b, err := Open(bytes.NewReader(good), pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(int64(len(good))); err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Version != "v2" || b.Manifest.PayloadBytes != int64(len(payload)) || b.Manifest.KeyID != KeyID(pub) {
		t.Errorf("manifest %+v", b.Manifest)
	}

	flip := func(i int) []byte { c := bytes.Clone(good); c[i] ^= 1; return c }
	for name, tc := range map[string]struct {
		data []byte
		pub  ed25519.PublicKey
		want error
	}{
		"payload byte flipped":  {flip(len(good) - 10), pub, ErrPayload},
		"manifest byte flipped": {flip(len(Magic) + 10), pub, ErrSignature},
		"truncated payload":     {good[:len(good)-1], pub, ErrPayload},
		"bytes appended":        {append(bytes.Clone(good), 0), pub, ErrPayload},
		"truncated header":      {good[:30], pub, ErrFormat},
		"not a bundle":          {[]byte("hsqs" + strings.Repeat("\x00", 200)), pub, ErrFormat},
		"another key":           {bundle(t, newKey(t), payload, "k1"), pub, ErrForeign},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Open(bytes.NewReader(tc.data), tc.pub)
			if err == nil {
				err = b.Verify(int64(len(tc.data)))
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

type rig struct {
	u     *Updater
	slots map[string]string
	log   bytes.Buffer
}

func newRig(t *testing.T, key ed25519.PublicKey, slotBytes int64) *rig {
	dir := t.TempDir()
	r := &rig{slots: map[string]string{}}
	for _, s := range []string{SlotA, SlotB} {
		p := filepath.Join(dir, "slot"+s)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(s[0])}, int(slotBytes)), 0o600); err != nil {
			t.Fatal(err)
		}
		r.slots[s] = p
	}
	state := filepath.Join(dir, "state")
	if err := os.WriteFile(state, []byte("committed=A\nversion_A=v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.u = &Updater{
		Key: key, StatePath: state, LastPath: filepath.Join(dir, "last"),
		Boot:   Boot{Slot: SlotA, Mode: ModeCommitted, PartUUID: "12345678"},
		Kernel: "k1",
		Device: func(s string) (*os.File, error) { return os.OpenFile(r.slots[s], os.O_RDWR, 0) },
		Now:    func() time.Time { return time.Unix(1e9, 0) },
		Log:    &r.log,
	}
	return r
}

func (r *rig) state(t *testing.T) State {
	st, err := ReadState(r.u.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeFile(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "b.bundle")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInstallWritesOtherSlotAndSetsTrial(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	payload := bytes.Repeat([]byte{7}, 3000)
	if _, err := r.u.Install(writeFile(t, bundle(t, key, payload, "k1"))); err != nil {
		t.Fatalf("%v\n%s", err, r.log.String())
	}
	got, _ := os.ReadFile(r.slots[SlotB])
	if !bytes.Equal(got[:3000], payload) {
		t.Error("slot B does not hold the payload")
	}
	a, _ := os.ReadFile(r.slots[SlotA])
	if !bytes.Equal(a, bytes.Repeat([]byte{'A'}, 4096)) {
		t.Error("the running slot A was touched")
	}
	st := r.state(t)
	if st["committed"] != SlotA || st["trial"] != SlotB || st.Tries() != TrialTries || st["version_B"] != "v2" {
		t.Errorf("state %v", st)
	}
	// A second install while the trial is pending is refused.
	if _, err := r.u.Install(writeFile(t, bundle(t, key, payload, "k1"))); !errors.Is(err, ErrBusy) {
		t.Errorf("second install: %v, want ErrBusy", err)
	}

	// The trial boot commits.
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if err := r.u.MarkGood(); err != nil {
		t.Fatal(err)
	}
	st = r.state(t)
	if st["committed"] != SlotB || st["trial"] != "" {
		t.Errorf("after MarkGood: %v", st)
	}
	last, _ := ReadState(r.u.LastPath)
	if last["outcome"] != "committed" || last["version"] != "v2" {
		t.Errorf("last %v", last)
	}
	// Committed, still in the boot that was the trial: the next install
	// goes to slot A.
	if _, err := r.u.Install(writeFile(t, bundle(t, key, payload, "k1"))); err != nil {
		t.Fatalf("install after the commit: %v", err)
	}
	if st := r.state(t); st["trial"] != SlotA {
		t.Errorf("after the second install: %v", st)
	}
}

func TestInstallRefusedWhileRunningAnUncommittedTrial(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if _, err := r.u.Install(writeFile(t, bundle(t, key, []byte("p"), "k1"))); !errors.Is(err, ErrBusy) {
		t.Errorf("got %v, want ErrBusy", err)
	}
}

func TestInstallRefusalsChangeNothing(t *testing.T) {
	key := newKey(t)
	payload := bytes.Repeat([]byte{7}, 3000)
	good := bundle(t, key, payload, "k1")
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 0xff
	for name, tc := range map[string]struct {
		data []byte
		slot int64
		want error
	}{
		"tampered":       {tampered, 4096, ErrPayload},
		"another key":    {bundle(t, newKey(t), payload, "k1"), 4096, ErrForeign},
		"other kernel":   {bundle(t, key, payload, "k2"), 4096, ErrIncompatible},
		"slot too small": {good, 2048, ErrTooBig},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, key.Public().(ed25519.PublicKey), tc.slot)
			before, _ := os.ReadFile(r.u.StatePath)
			if _, err := r.u.Install(writeFile(t, tc.data)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			after, _ := os.ReadFile(r.u.StatePath)
			if !bytes.Equal(before, after) {
				t.Errorf("state changed: %q -> %q", before, after)
			}
			b, _ := os.ReadFile(r.slots[SlotB])
			if !bytes.Equal(b, bytes.Repeat([]byte{'B'}, int(tc.slot))) {
				t.Error("slot B was written")
			}
		})
	}
}

func TestReportRollback(t *testing.T) {
	r := newRig(t, newKey(t).Public().(ed25519.PublicKey), 16)
	os.WriteFile(r.u.StatePath, []byte("committed=A\nfailed=B\nversion_A=v1\nversion_B=v2\n"), 0o644)
	r.u.Boot = Boot{Slot: SlotA, Mode: ModeRolledBack, Failed: SlotB}
	if err := r.u.ReportRollback(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.log.String(), "version v2 rolled back") {
		t.Errorf("log %q", r.log.String())
	}
	last, _ := ReadState(r.u.LastPath)
	if last["outcome"] != "rolled-back" || last["version"] != "v2" {
		t.Errorf("last %v", last)
	}
}

func TestStateRoundTrip(t *testing.T) {
	st, err := ParseState(strings.NewReader("# c\ncommitted=A\n\ntrial=B\ntries=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseState(bytes.NewReader(st.Bytes()))
	if err != nil || len(back) != 3 || back["trial"] != "B" || back.Tries() != 1 {
		t.Errorf("%v %v", back, err)
	}
	if _, err := ParseState(strings.NewReader("garbage\n")); err == nil {
		t.Error("a line without = parsed")
	}
}

func FuzzOpen(f *testing.F) {
	key := newKey(f)
	pub := key.Public().(ed25519.PublicKey)
	f.Add(bundle(f, key, []byte("payload"), "k"))
	f.Add([]byte(Magic + "\x00\x00\x00\x05{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Open(bytes.NewReader(data), pub)
		if err != nil {
			return
		}
		_ = b.Verify(int64(len(data)))
		_, _ = io.Copy(io.Discard, b.Payload())
	})
}

func FuzzParseState(f *testing.F) {
	f.Add("committed=A\ntrial=B\ntries=1\n")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseState(strings.NewReader(s))
		if err != nil {
			return
		}
		if _, err := ParseState(bytes.NewReader(st.Bytes())); err != nil && !strings.Contains(s, "\r") {
			t.Errorf("round trip of %q: %v", s, err)
		}
	})
}
