package daemon

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"sensord/cmd/sensord/internal/httpjson"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/image/paths"
	"sensord/image/update"
)

// updateSpoolName is the name the root path unit
// (sensord-update-spool.path) waits for; an upload is renamed to it only
// once it is complete, synced, its signature checked and its release
// found newer than the committed slot's.
const updateSpoolName = paths.SpoolName

// maxUploadBytes bounds an uploaded bundle: the root slot it is written
// to is 768 MiB (image/layout), and the bundle's header is a few hundred
// bytes; anything larger cannot be installed and would only fill /data.
const maxUploadBytes = 768<<20 + 64<<10

// uploadTimeout bounds one upload's body: a 250 MiB bundle over a Pi's
// 2.4 GHz Wi-Fi at 1 MB/s takes about four minutes; the server's own
// ReadTimeout is for small requests.
const uploadTimeout = 20 * time.Minute

// minUploadRate is the slowest an upload may arrive, averaged over each
// uploadRateWindow: a Pi's Wi-Fi carries hundreds of KiB a second even
// when poor, and at this rate a 250 MiB bundle would still arrive in nine
// hours; slower is a peer holding the single upload slot hostage, so the
// upload is broken off and the slot freed.
const (
	minUploadRate    = 8 << 10 // bytes a second
	uploadRateWindow = 30 * time.Second
)

// updatePanel serves the dashboard's view of the A/B updater:
//
//	GET  /api/update   running slot and version, pending trial, last outcome,
//	                   and what would decide the trial of an upload now
//	POST /api/update   the request body is a bundle: spooled for the updater
//	                   (the owner token is checked in front, by guard.Owner)
//
// sensord stays unprivileged: it never writes a slot or the slot state. An
// upload is written to SpoolDir (a temporary name, synced, its signature
// checked against the key the image trusts so a wrong file is refused at
// once with a clear message), then renamed to updateSpoolName; a root
// path unit sees the name and runs `sensorctl install-spool`, which checks
// everything again, installs, records the outcome in LastPath and reboots
// into the trial. Both sides are on the same filesystem, so the rename is
// atomic: the updater never sees half an upload.
type updatePanel struct {
	BootPath, StatePath, LastPath, KeyPath, SpoolDir string
	// VerdictPath is sensord's verdict file as the updater reads it
	// (paths.Verdict): the forecast reads it the same way.
	VerdictPath string
	MaxBytes    int64
	MinRate     int64         // minUploadRate
	RateWindow  time.Duration // uploadRateWindow
	// Writable: an owner token is configured, so uploads are possible
	// (guard.Owner checks each one).
	Writable bool
	Now      func() time.Time
	Log      *slog.Logger

	uploading sync.Mutex    // one upload at a time
	refused   atomic.Uint64 // uploads answered 4xx/5xx
	accepted  atomic.Uint64 // uploads handed to the updater
}

func newUpdatePanel(log *slog.Logger) *updatePanel {
	return &updatePanel{
		BootPath: paths.Boot, StatePath: paths.StateView, LastPath: paths.Last,
		KeyPath: paths.UpdateKey, SpoolDir: paths.SpoolDir, VerdictPath: paths.Verdict,
		MaxBytes: maxUploadBytes, MinRate: minUploadRate, RateWindow: uploadRateWindow, Now: time.Now, Log: log,
	}
}

// updateInfo is GET /api/update's body.
type updateInfo struct {
	// Available is false off the A/B image (no /run/sensord-boot): make
	// run on a laptop, a Pi on Raspberry Pi OS. The rest is then empty.
	Available bool   `json:"available"`
	Slot      string `json:"slot,omitempty"`
	// Mode is committed, trial (this boot is on trial, not yet
	// committed) or rolled-back (the trial before this boot failed).
	Mode      string `json:"mode,omitempty"`
	Version   string `json:"version,omitempty"` // what the slot state says the running slot holds
	Release   uint64 `json:"release,omitempty"` // its release number (0: unknown)
	Committed string `json:"committed,omitempty"`
	Trial     string `json:"trial,omitempty"` // the slot that boots on trial next
	// SensorAtInstall: whether the sensor read well when the pending or
	// running trial was installed (package update, "What commits a trial").
	SensorAtInstall string    `json:"sensor_at_install,omitempty"`
	Last            *lastInfo `json:"last,omitempty"`
	// Pending: an upload waits for (or is in) the updater.
	Pending bool `json:"pending"`
	// Writable is false while writing is off (no -owner-token): the
	// panel then says how to turn it on instead of offering an upload.
	Writable bool   `json:"writable"`
	Error    string `json:"error,omitempty"`
	// Forecast: what would decide the trial of a bundle uploaded now,
	// and a warning when it would be refused or could not commit
	// (update.ForecastInstall). Absent off the A/B image.
	Forecast *forecastInfo `json:"forecast,omitempty"`
}

// forecastInfo is update.Forecast for the page and for scripts: Says in
// words what decides the trial; Warning (with its Blocker) is set when an
// upload now would be refused or its trial could not commit, and the
// dashboard then asks for a second confirmation.
type forecastInfo struct {
	Rule              string `json:"rule,omitempty"`
	SensorAtInstall   string `json:"sensor_at_install,omitempty"`
	HealthyForSeconds int64  `json:"healthy_for_seconds"`
	WithinSeconds     int64  `json:"within_seconds"`
	Says              string `json:"says,omitempty"`
	Blocker           string `json:"blocker,omitempty"`
	Warning           string `json:"warning,omitempty"`
}

// lastInfo is the last update attempt's outcome (update.Outcome); Rule
// names what decided a commit or a rollback.
type lastInfo struct {
	Outcome string `json:"outcome"`
	Version string `json:"version,omitempty"`
	Release uint64 `json:"release,omitempty"`
	Slot    string `json:"slot,omitempty"`
	Time    string `json:"time,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

func (u *updatePanel) info() updateInfo {
	b, err := update.ReadBoot(u.BootPath)
	if errors.Is(err, os.ErrNotExist) {
		return updateInfo{Writable: u.Writable}
	}
	in := updateInfo{Available: true, Slot: b.Slot, Mode: b.Mode, Writable: u.Writable}
	fi := update.ForecastInput{Boot: b, BootErr: err}
	if err != nil {
		in.Error, in.Forecast = err.Error(), u.forecast(fi)
		return in
	}
	st, err := update.ReadState(u.StatePath)
	fi.State, fi.StateErr = st, err
	if err != nil {
		in.Error, in.Forecast = err.Error(), u.forecast(fi)
		return in
	}
	run := st.Slot(b.Slot)
	in.Version, in.Release, in.Committed, in.Trial, in.SensorAtInstall = run.Version, run.Release, st.Committed, st.Trial, st.SensorAtInstall
	if o, err := update.ReadOutcome(u.LastPath); err == nil {
		in.Last = &lastInfo{Outcome: o.Outcome, Version: o.Version, Release: o.Release, Slot: o.Slot, Time: o.Time, Rule: o.Rule, Detail: o.Detail}
	}
	_, err = os.Lstat(filepath.Join(u.SpoolDir, updateSpoolName))
	in.Pending = err == nil
	fi.Pending = in.Pending
	in.Forecast = u.forecast(fi)
	return in
}

// forecast completes fi with sensord's verdict file, read as the updater
// reads it, and says what an upload now would meet.
func (u *updatePanel) forecast(fi update.ForecastInput) *forecastInfo {
	fi.Verdict, fi.Stale, fi.VerdictErr = update.ReadVerdict(u.VerdictPath, u.Now())
	f := update.ForecastInstall(fi)
	return &forecastInfo{Rule: f.Rule, SensorAtInstall: f.SensorAtInstall,
		HealthyForSeconds: int64(f.HealthyFor / time.Second), WithinSeconds: int64(f.Within / time.Second),
		Says: f.Says, Blocker: string(f.Blocker), Warning: f.Warning}
}

func (u *updatePanel) handleGet(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, u.info())
}

// handlePost spools the request body as a bundle.
func (u *updatePanel) handlePost(w http.ResponseWriter, r *http.Request) {
	status, err := u.spool(w, r)
	if err != nil {
		u.refused.Add(1)
		u.Log.Warn("update upload refused", "status", status, "err", err)
		httpjson.WriteError(w, status, err.Error())
		return
	}
	u.accepted.Add(1)
	httpjson.Write(w, http.StatusAccepted, struct {
		Status string `json:"status"`
	}{"the bundle's signature is good; the updater installs it and reboots into it on trial"})
}

// Errors an upload can meet, with the status each answers.
var (
	errUpdateUnavailable = errors.New("updates need the A/B image (this system was not booted through its initramfs)")
	errUpdateBusy        = errors.New("an update is already being uploaded or installed")
	errUpdateSlow        = errors.New("upload arriving too slowly: broken off to free the upload for others")
)

func (u *updatePanel) spool(w http.ResponseWriter, r *http.Request) (int, error) {
	if _, err := os.Stat(u.BootPath); err != nil {
		return http.StatusNotImplemented, errUpdateUnavailable
	}
	if !u.uploading.TryLock() {
		return http.StatusConflict, errUpdateBusy
	}
	defer u.uploading.Unlock()
	final := filepath.Join(u.SpoolDir, updateSpoolName)
	if _, err := os.Lstat(final); err == nil {
		return http.StatusConflict, errUpdateBusy
	}
	if r.ContentLength > u.MaxBytes {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("bundle of %d bytes is larger than a root slot can take (%d)", r.ContentLength, u.MaxBytes)
	}
	key, err := update.ReadPublicKey(u.KeyPath)
	if err != nil {
		return http.StatusInternalServerError, err
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(u.Now().Add(uploadTimeout))
	rc.SetWriteDeadline(u.Now().Add(uploadTimeout + time.Minute))
	if err := os.MkdirAll(u.SpoolDir, 0o700); err != nil {
		return http.StatusInternalServerError, fmt.Errorf("spool: %w", err)
	}
	tmp, err := os.CreateTemp(u.SpoolDir, ".upload-*")
	if err != nil {
		return http.StatusInternalServerError, fmt.Errorf("spool: %w", err)
	}
	keep := false
	defer func() {
		tmp.Close()
		if !keep {
			os.Remove(tmp.Name())
		}
	}()
	body := &rateReader{r: http.MaxBytesReader(w, r.Body, u.MaxBytes), rc: rc, now: u.Now, min: u.MinRate, window: u.RateWindow, deadline: u.Now().Add(uploadTimeout)}
	// The header first: a bundle signed by another key, or not newer than
	// what runs, is refused before anything is spooled.
	head, err := update.ReadHead(body)
	if err != nil {
		return http.StatusUnprocessableEntity, err
	}
	b, err := update.Open(bytes.NewReader(head), ed25519.PublicKey(key))
	if err != nil {
		return http.StatusUnprocessableEntity, err
	}
	if status, err := u.checkRelease(b.Manifest); err != nil {
		return status, err
	}
	if _, err := tmp.Write(head); err != nil {
		return http.StatusInsufficientStorage, fmt.Errorf("spool: %w", err)
	}
	n, err := io.Copy(tmp, body)
	n += int64(len(head))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("bundle larger than a root slot can take (%d bytes)", u.MaxBytes)
	case errors.Is(err, errUpdateSlow):
		return http.StatusRequestTimeout, fmt.Errorf("%w: under %d bytes/s over %s", errUpdateSlow, u.MinRate, u.RateWindow)
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("upload broken off after %d bytes: %w", n, err)
	}
	if err := tmp.Sync(); err != nil {
		return http.StatusInsufficientStorage, fmt.Errorf("spool: %w", err)
	}
	// The payload's size and hash, here and now, so a wrong file gets its
	// answer in the browser; the updater checks everything again.
	b, err = update.Open(tmp, ed25519.PublicKey(key))
	if err != nil {
		return http.StatusUnprocessableEntity, err
	}
	if err := b.Verify(n); err != nil {
		return http.StatusUnprocessableEntity, err
	}
	if err := tmp.Close(); err != nil {
		return http.StatusInsufficientStorage, fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return http.StatusInternalServerError, fmt.Errorf("spool: %w", err)
	}
	keep = true
	u.Log.Info("update uploaded, handed to the updater", "version", b.Manifest.Version, "release", b.Manifest.Release, "bytes", n)
	return http.StatusAccepted, nil
}

// rateReader fails with errUpdateSlow once a window passes in which
// fewer than min bytes a second arrived; it moves the connection's read
// deadline to each window's end, so that a body that stops altogether is
// caught too.
type rateReader struct {
	r        io.Reader
	rc       *http.ResponseController
	now      func() time.Time
	min      int64
	window   time.Duration
	deadline time.Time // the whole upload's

	start time.Time // of the current window; zero before the first read
	n     int64     // bytes in it
}

func (b *rateReader) Read(p []byte) (int, error) {
	now := b.now()
	if b.start.IsZero() || now.Sub(b.start) >= b.window {
		if !b.start.IsZero() && b.n < b.min*int64(now.Sub(b.start))/int64(time.Second) {
			return 0, errUpdateSlow
		}
		b.start, b.n = now, 0
		end := now.Add(b.window)
		if end.After(b.deadline) {
			end = b.deadline
		}
		b.rc.SetReadDeadline(end) //nolint:errcheck // a connection without deadlines keeps the overall bound
	}
	k, err := b.r.Read(p)
	b.n += int64(k)
	if errors.Is(err, os.ErrDeadlineExceeded) && b.now().Before(b.deadline) {
		return k, errUpdateSlow
	}
	return k, err
}

// checkRelease refuses, with the updater's words, a bundle that is not
// newer than the committed slot or is the running one: an upload never
// goes back (only root can, over SSH: sensorctl update --allow-downgrade).
func (u *updatePanel) checkRelease(m update.Manifest) (int, error) {
	b, err := update.ReadBoot(u.BootPath)
	if err != nil {
		return http.StatusInternalServerError, err
	}
	st, err := update.ReadState(u.StatePath)
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if err := update.CheckRelease(st, b.Slot, m); err != nil {
		return http.StatusConflict, fmt.Errorf("%w; an upload cannot go back: as root, over SSH, sensorctl update --allow-downgrade FILE", err)
	}
	return 0, nil
}

// register and writeMetrics do nothing on a nil panel (a daemon built by
// hand in a test).
func (u *updatePanel) register(mux *http.ServeMux) {
	if u == nil {
		return
	}
	mux.HandleFunc("GET /api/update", u.handleGet)
	mux.HandleFunc("POST /api/update", u.handlePost)
}

func (u *updatePanel) writeMetrics(m *promtext.Writer) {
	if u == nil {
		return
	}
	m.Family("sensord_update_uploads_total", promtext.Counter, "Update bundles uploaded on the dashboard, by result (refused: not a bundle, bad signature, too big, busy, broken off).")
	m.Sample("sensord_update_uploads_total", `result="accepted"`, float64(u.accepted.Load()))
	m.Sample("sensord_update_uploads_total", `result="refused"`, float64(u.refused.Load()))
}
