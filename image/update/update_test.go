package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
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
	return bundleRelease(t, key, payload, kernel, "v2", 2)
}

func bundleRelease(t testing.TB, key ed25519.PrivateKey, payload []byte, kernel, version string, release uint64) []byte {
	var b bytes.Buffer
	m := Manifest{Compatible: Compatible, Version: version, Release: release, Kernel: kernel}
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
	if err := os.WriteFile(state, []byte("committed=A\nversion_A=v1\nrelease_A=1\n"), 0o644); err != nil {
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

func (r *rig) state(t *testing.T) SlotState {
	t.Helper()
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
	if _, err := r.u.Install(writeFile(t, bundle(t, key, payload, "k1")), InstallOptions{}); err != nil {
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
	if st.Committed != SlotA || st.Trial != SlotB || st.Tries != TrialTries || st.B != (SlotInfo{"v2", 2}) || st.SensorAtInstall != SensorNotReading {
		t.Errorf("state %+v", st)
	}
	// A second install while the trial is pending is refused.
	if _, err := r.u.Install(writeFile(t, bundle(t, key, payload, "k1")), InstallOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("second install: %v, want ErrBusy", err)
	}

	// The trial boot commits.
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if err := r.u.MarkGood(RuleMarkGood, "by hand"); err != nil {
		t.Fatal(err)
	}
	st = r.state(t)
	if st.Committed != SlotB || st.Trial != "" || st.SensorAtInstall != "" {
		t.Errorf("after MarkGood: %+v", st)
	}
	last, _ := ReadOutcome(r.u.LastPath)
	if last.Outcome != OutcomeCommitted || last.Version != "v2" || last.Release != 2 || last.Rule != RuleMarkGood {
		t.Errorf("last %+v", last)
	}
	// Committed, still in the boot that was the trial: the next install
	// goes to slot A.
	if _, err := r.u.Install(writeFile(t, bundleRelease(t, key, payload, "k1", "v3", 3)), InstallOptions{SensorAtInstall: SensorReading}); err != nil {
		t.Fatalf("install after the commit: %v", err)
	}
	if st := r.state(t); st.Trial != SlotA || st.A != (SlotInfo{"v3", 3}) || st.SensorAtInstall != SensorReading {
		t.Errorf("after the second install: %+v", st)
	}
}

// sensord reads the slot state from StateView: every write of the state
// reaches it, and PublishState copies the state as it is at boot.
func TestStateViewFollowsEveryWrite(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	r.u.StateView = filepath.Join(t.TempDir(), "view")
	same := func(when string) {
		t.Helper()
		want, _ := os.ReadFile(r.u.StatePath)
		got, err := os.ReadFile(r.u.StateView)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: view %q (%v), state %q", when, got, err, want)
		}
	}
	if err := r.u.PublishState(); err != nil {
		t.Fatal(err)
	}
	same("at boot")
	if _, err := r.u.Install(writeFile(t, bundle(t, key, bytes.Repeat([]byte{7}, 3000), "k1")), InstallOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, r.log.String())
	}
	same("after install")
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if err := r.u.MarkGood(RuleMarkGood, "by hand"); err != nil {
		t.Fatal(err)
	}
	same("after the commit")
	if st, _ := ReadState(r.u.StateView); st.Committed != SlotB {
		t.Errorf("view after the commit: %+v", st)
	}
}

func TestInstallRefusedWhileRunningAnUncommittedTrial(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if _, err := r.u.Install(writeFile(t, bundle(t, key, []byte("p"), "k1")), InstallOptions{}); !errors.Is(err, ErrBusy) {
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
		"older release":  {bundleRelease(t, key, payload, "k1", "v0", 0), 4096, ErrNotNewer},
		"same release":   {bundleRelease(t, key, payload, "k1", "v1", 1), 4096, ErrNotNewer},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, key.Public().(ed25519.PublicKey), tc.slot)
			before, _ := os.ReadFile(r.u.StatePath)
			if _, err := r.u.Install(writeFile(t, tc.data), InstallOptions{}); !errors.Is(err, tc.want) {
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
	if !strings.Contains(r.log.String(), "version v2 rolled back by rule boot-ended") {
		t.Errorf("log %q", r.log.String())
	}
	last, _ := ReadOutcome(r.u.LastPath)
	if last.Outcome != OutcomeRolledBack || last.Version != "v2" || last.Rule != RuleBootEnded {
		t.Errorf("last %+v", last)
	}

	// When the gate gave up, the rollback names the gate's rule.
	r.log.Reset()
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if err := r.u.GiveUp(RuleSensorBroken, "the sensor stopped"); err != nil {
		t.Fatal(err)
	}
	r.u.Boot = Boot{Slot: SlotA, Mode: ModeRolledBack, Failed: SlotB}
	if err := r.u.ReportRollback(); err != nil {
		t.Fatal(err)
	}
	last, _ = ReadOutcome(r.u.LastPath)
	if last.Outcome != OutcomeRolledBack || last.Rule != RuleSensorBroken || !strings.Contains(last.Detail, "the sensor stopped") {
		t.Errorf("last after the gate gave up %+v", last)
	}
}

// The boot script rolls back without writing the state (it only counts
// boots): the report forgets the trial, so the next boot is a plain
// committed one. A state the initramfs already cleared is not rewritten.
func TestReportRollbackForgetsTheTrialTheBootScriptGaveUpOn(t *testing.T) {
	r := newRig(t, newKey(t).Public().(ed25519.PublicKey), 16)
	if err := os.WriteFile(r.u.StatePath, []byte("committed=A\ntrial=B\ntries=3\nversion_A=v1\nversion_B=v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.u.Boot = Boot{Slot: SlotA, Mode: ModeRolledBack, Failed: SlotB}
	if err := r.u.ReportRollback(); err != nil {
		t.Fatal(err)
	}
	st := r.state(t)
	if st.Committed != SlotA || st.Trial != "" || st.Tries != 0 || st.Failed != SlotB || st.B.Version != "v2" {
		t.Errorf("state after the report: %+v; want A committed, no trial, failed=B", st)
	}
	before, _ := os.ReadFile(r.u.StatePath)
	if err := r.u.ReportRollback(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(r.u.StatePath); !bytes.Equal(before, after) {
		t.Errorf("a second report rewrote the state: %q -> %q", before, after)
	}
}

func TestStateRoundTrip(t *testing.T) {
	in := "# c\ncommitted=B\n\ntrial=A\ntries=1\nversion_A=v2\nrelease_A=7\nversion_B=v1\nfuture=x\n"
	st, err := ParseState(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := SlotState{Committed: SlotB, Trial: SlotA, Tries: 1, A: SlotInfo{"v2", 7}, B: SlotInfo{"v1", 0}, Unknown: []string{"future=x"}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got %+v, want %+v", st, want)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "committed=B\ntrial=A\ntries=1\nversion_A=v2\nrelease_A=7\nversion_B=v1\nfuture=x\n" {
		t.Errorf("written as %q", got)
	}
	for _, bad := range []string{"garbage\n", "committed=C\n", "tries=x\n", "tries=10\n", "release_A=-1\n"} {
		if _, err := ParseState(strings.NewReader(bad)); !errors.Is(err, ErrState) {
			t.Errorf("%q: got %v, want ErrState", bad, err)
		}
	}
	st.A.Version = "v2\ncommitted=A"
	if _, err := st.Marshal(); !errors.Is(err, ErrState) {
		t.Errorf("a version with a line break was written: %v", err)
	}
}

func TestCheckReleaseNamesBothVersions(t *testing.T) {
	st := SlotState{Committed: SlotA, A: SlotInfo{"v1.4", 14}, B: SlotInfo{"v1.3", 13}}
	for _, tc := range []struct {
		name    string
		m       Manifest
		wantErr bool
		words   []string
	}{
		{"a newer release installs", Manifest{Version: "v1.5", Release: 15}, false, nil},
		{"the running release is refused", Manifest{Version: "v1.4", Release: 14}, true,
			[]string{"release 14 (version v1.4) is the release already running in slot A (release 14, version v1.4)"}},
		{"an older release is refused", Manifest{Version: "v1.3", Release: 13}, true,
			[]string{"bundle release 13 (version v1.3) is not newer than the committed slot A's release 14 (version v1.4)"}},
		{"a bundle without a release is release 0", Manifest{Version: "v1.0"}, true,
			[]string{"release 0 (version v1.0)", "carries no release number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRelease(st, SlotA, tc.m)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrNotNewer)) {
				t.Fatalf("got %v, want error %v", err, tc.wantErr)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
	// A card whose slots carry no release yet (installed before release
	// numbers) takes any bundle that has one.
	if err := CheckRelease(SlotState{Committed: SlotA, A: SlotInfo{Version: "old"}}, SlotA, Manifest{Release: 1}); err != nil {
		t.Errorf("release 1 on a card without releases: %v", err)
	}
}

func TestInstallDowngradeOnlyWhenAllowed(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	os.WriteFile(r.u.StatePath, []byte("committed=A\nversion_A=v5\nrelease_A=5\n"), 0o644)
	older := writeFile(t, bundleRelease(t, key, bytes.Repeat([]byte{3}, 100), "k1", "v3", 3))
	_, err := r.u.Install(older, InstallOptions{})
	if !errors.Is(err, ErrNotNewer) || !strings.Contains(err.Error(), "--allow-downgrade") {
		t.Fatalf("got %v, want ErrNotNewer naming --allow-downgrade", err)
	}
	if _, err := r.u.Install(older, InstallOptions{AllowDowngrade: true}); err != nil {
		t.Fatalf("with AllowDowngrade: %v", err)
	}
	if st := r.state(t); st.Trial != SlotB || st.B != (SlotInfo{"v3", 3}) {
		t.Errorf("state %+v", st)
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
	f.Add("committed=B\nfailed=A\nversion_A=v1\nrelease_A=3\nsensor_at_install=reading\nx=y\n")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseState(strings.NewReader(s))
		if err != nil {
			return
		}
		b, err := st.Marshal()
		if err != nil {
			return // a value the line format cannot carry
		}
		back, err := ParseState(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("round trip of %q: %v", s, err)
		}
		b2, err := back.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Errorf("%q written as %q, then as %q (%v)", s, b, b2, err)
		}
	})
}

// FuzzReadHead: an upload's first bytes, as sensord reads them before it
// spools anything: never a panic, and a head that opens is the bundle's.
func FuzzReadHead(f *testing.F) {
	key := newKey(f)
	pub := key.Public().(ed25519.PublicKey)
	f.Add(bundle(f, key, []byte("payload"), "k"))
	f.Add([]byte(Magic + "\x00\x00\x00\x05{}"))
	f.Add([]byte(Magic + "\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		head, err := ReadHead(bytes.NewReader(data))
		if !bytes.HasPrefix(data, head) {
			t.Fatalf("ReadHead returned bytes that are not the input's start")
		}
		if err != nil {
			return
		}
		if _, err := Open(bytes.NewReader(head), pub); err == nil {
			if _, err := Open(bytes.NewReader(data), pub); err != nil {
				t.Errorf("the head opens, the whole does not: %v", err)
			}
		}
	})
}

func FuzzParseOutcome(f *testing.F) {
	f.Add("outcome=rolled-back\nversion=v2\nrelease=3\nslot=B\ntime=2026-12-01T10:00:00Z\nrule=never-alive\ndetail=x; y\n")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOutcome(strings.NewReader(s))
		if err != nil {
			return
		}
		b, err := o.Marshal()
		if err != nil {
			return
		}
		back, err := ParseOutcome(bytes.NewReader(b))
		if err != nil || back != o {
			t.Errorf("%q: read back as %+v (%v), want %+v", s, back, err, o)
		}
	})
}

// slotFilesRig gives r a boot partition, with the boot script's slot
// state and a used-up count of boots when chooser is set, and slot roots
// whose boot files are src; it returns the boot partition and the slots
// opened and closed.
func slotFilesRig(t *testing.T, r *rig, chooser bool, src string, openErr error) (fat string, opened, closed *[]string) {
	t.Helper()
	fat = t.TempDir()
	if chooser {
		if err := os.MkdirAll(filepath.Join(fat, ChooserDir), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string]string{ChooserStateName: "committed=A\n", BootsName: "boots=3\n\x00"} {
			if err := os.WriteFile(filepath.Join(fat, ChooserDir, name), []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	opened, closed = new([]string), new([]string)
	r.u.BootPartition = fat
	r.u.SlotFiles = func(s string) (string, func() error, error) {
		*opened = append(*opened, s)
		if openErr != nil {
			return "", nil, openErr
		}
		return src, func() error { *closed = append(*closed, s); return nil }, nil
	}
	return fat, opened, closed
}

// Once the boot script chooses the slot, a bundle may bring another
// kernel: its slot's boot files go to slot-b/ and the trial's count of
// boots is reset before the state names B the trial.
func TestInstallCopiesTheSlotsBootFilesWhenTheBootScriptChooses(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	fat, opened, closed := slotFilesRig(t, r, true, newSlotFiles(t, t.TempDir(), 1000, 500), nil)
	if _, err := r.u.Install(writeFile(t, bundle(t, key, bytes.Repeat([]byte{7}, 3000), "k2")), InstallOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, r.log.String())
	}
	if strings.Join(*opened, ",") != "B" || strings.Join(*closed, ",") != "B" {
		t.Errorf("slots opened %v, closed %v; want B and B", *opened, *closed)
	}
	if fi, err := os.Stat(filepath.Join(SlotBootDir(fat, SlotB), KernelName)); err != nil || fi.Size() != 1000 {
		t.Errorf("slot-b/vmlinuz: %v, want the slot's 1000 bytes", err)
	}
	if _, err := os.Stat(filepath.Join(SlotBootDir(fat, SlotB), SizesName)); err != nil {
		t.Errorf("slot-b/%s: %v", SizesName, err)
	}
	if n, err := ReadBoots(filepath.Join(fat, ChooserDir, BootsName)); err != nil || n != 0 {
		t.Errorf("the trial's boots: %d, %v; want 0", n, err)
	}
	if st := r.state(t); st.Trial != SlotB || st.B != (SlotInfo{"v2", 2}) {
		t.Errorf("state %+v", st)
	}
}

// Without the boot script's slot state on the boot partition every slot
// boots the card's own kernel: a bundle for another one is refused and
// the boot partition is not touched.
func TestInstallLeavesTheBootPartitionWhileTheInitramfsChooses(t *testing.T) {
	key := newKey(t)
	payload := bytes.Repeat([]byte{7}, 3000)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	fat, opened, _ := slotFilesRig(t, r, false, newSlotFiles(t, t.TempDir(), 1000, 500), nil)
	if _, err := r.u.Install(writeFile(t, bundle(t, key, payload, "k2")), InstallOptions{}); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("another kernel: got %v, want ErrIncompatible", err)
	}
	if _, err := r.u.Install(writeFile(t, bundle(t, key, payload, "k1")), InstallOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, r.log.String())
	}
	if len(*opened) != 0 || len(entries(t, fat)) != 0 {
		t.Errorf("slots opened %v, boot partition %v; want none and empty", *opened, entries(t, fat))
	}
}

// A slot whose root cannot be opened after it was written is not named
// the trial: the slot stays forgotten and the committed one boots.
func TestInstallWithoutTheSlotsBootFilesNamesNoTrial(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	fat, _, _ := slotFilesRig(t, r, true, "", errors.New("mount: wrong fs type"))
	_, err := r.u.Install(writeFile(t, bundle(t, key, bytes.Repeat([]byte{7}, 3000), "k2")), InstallOptions{})
	if !errors.Is(err, ErrBootFiles) {
		t.Fatalf("got %v, want ErrBootFiles", err)
	}
	if st := r.state(t); st.Trial != "" || st.Committed != SlotA || st.B != (SlotInfo{}) {
		t.Errorf("state %+v: want slot A committed, no trial, slot B forgotten", st)
	}
	if _, err := os.Stat(SlotBootDir(fat, SlotB)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("slot-b on the boot partition: %v", err)
	}
}

// The boot script gives a trial several boots; once the gate gives up,
// the trial gets no more, so the next boot rolls back. The initramfs
// spends its one try before the trial boots: that state is not rewritten.
func TestGiveUpLeavesTheTrialNoBoots(t *testing.T) {
	for name, tc := range map[string]struct {
		state     string
		rewritten bool
	}{
		"boot script, 3 boots": {"committed=A\ntrial=B\ntries=3\nversion_A=v1\nversion_B=v2\n", true},
		"initramfs, try spent": {"committed=A\ntrial=B\nversion_A=v1\nversion_B=v2\n", false},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, newKey(t).Public().(ed25519.PublicKey), 16)
			if err := os.WriteFile(r.u.StatePath, []byte(tc.state), 0o644); err != nil {
				t.Fatal(err)
			}
			r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
			if err := r.u.GiveUp(RuleNeverAlive, "never alive"); err != nil {
				t.Fatal(err)
			}
			st := r.state(t)
			if st.Trial != SlotB || st.Tries != 0 || st.Committed != SlotA {
				t.Errorf("state %+v: want trial B with no boots left, A committed", st)
			}
			after, _ := os.ReadFile(r.u.StatePath)
			if rewritten := string(after) != tc.state; rewritten != tc.rewritten {
				t.Errorf("state rewritten %v, want %v: %q", rewritten, tc.rewritten, after)
			}
		})
	}
}

// The initramfs says which build made it: after an update that brought
// its own boot files, the trial's.
func TestParseBootReadsTheInitramfsBuild(t *testing.T) {
	b, err := ParseBoot(strings.NewReader("slot=B\nmode=trial\npartuuid=1234abcd\ninitramfs=1.2.3+kernel\n"))
	if err != nil || b != (Boot{Slot: SlotB, Mode: ModeTrial, PartUUID: "1234abcd", Initramfs: "1.2.3+kernel"}) {
		t.Errorf("ParseBoot: %+v, %v", b, err)
	}
	b, err = ParseBoot(strings.NewReader("slot=A\nmode=committed\npartuuid=1234abcd\n"))
	if err != nil || b.Initramfs != "" {
		t.Errorf("an initramfs that does not say: %+v, %v", b, err)
	}
}

// TestTheGateLeavesASlotCommittedByHandAlone: sensorctl mark-good commits
// the trial while its gate still runs; the gate's later decision must not
// roll it back, reboot it, or rewrite which rule committed it.
func TestTheGateLeavesASlotCommittedByHandAlone(t *testing.T) {
	key := newKey(t)
	r := newRig(t, key.Public().(ed25519.PublicKey), 4096)
	if _, err := r.u.Install(writeFile(t, bundle(t, key, []byte("root"), "k1")), InstallOptions{SensorAtInstall: SensorReading}); err != nil {
		t.Fatal(err)
	}
	r.u.Boot = Boot{Slot: SlotB, Mode: ModeTrial}
	if err := r.u.MarkGood(RuleMarkGood, "by hand"); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(r.u.LastPath)
	if err := r.u.GiveUp(RuleSensorBroken, "the sensor did not read"); !errors.Is(err, ErrCommitted) {
		t.Errorf("GiveUp after mark-good: %v, want ErrCommitted", err)
	}
	if err := r.u.MarkGood(RuleAliveAndSensor, "alive"); !errors.Is(err, ErrCommitted) {
		t.Errorf("the gate's MarkGood after mark-good: %v, want ErrCommitted", err)
	}
	if got, _ := os.ReadFile(r.u.LastPath); !bytes.Equal(got, want) {
		t.Errorf("last outcome rewritten:\n%s\nwant\n%s", got, want)
	}
	if st := r.state(t); st.Committed != SlotB || st.Trial != "" {
		t.Errorf("state %+v, want slot B committed, nothing on trial", st)
	}
}
