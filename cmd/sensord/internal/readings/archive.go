package readings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sensord/cmd/sensord/internal/httpjson"
	"sensord/sensor/history"
)

// Archiver is what Backup and Restore need of the history store.
type Archiver interface {
	Backup(ctx context.Context, w io.Writer, size func(int64)) (int64, error)
	Restore(ctx context.Context, r io.Reader) error
	Start(ctx context.Context) (time.Time, bool, error)
}

// backupTimeout bounds sending one backup: a year's database (~50 MB)
// over slow Wi-Fi.
const backupTimeout = 10 * time.Minute

// Backup serves GET /api/history/backup: the whole history as one SQLite
// file, consistent (staged with VACUUM INTO), named after the device and
// the time.
type Backup struct {
	Now func() time.Time
	// Name is the device's name, in the file's name.
	Name  string
	Store Archiver // nil: unavailable, for the reason in Unavailable
	// Unavailable says why Store is nil.
	Unavailable string
	// History counts the 429s with /api/history's.
	History *History
}

// ServeHTTP implements http.Handler.
func (b *Backup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.Store == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "history is unavailable: "+b.Unavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), backupTimeout)
	defer cancel()
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(backupTimeout)) //nolint:errcheck // a recorder in tests has none
	started := false
	name := fmt.Sprintf("sensord-history-%s-%s.db", fileSafe(b.Name), b.Now().UTC().Format("20060102T1504Z"))
	_, err := b.Store.Backup(ctx, w, func(size int64) {
		started = true
		w.Header().Set("Content-Type", "application/vnd.sqlite3")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Cache-Control", "no-store")
	})
	switch {
	case err == nil:
	case !started:
		b.History.fail(w, err)
	default:
		// A cut connection tells the client that the file is not whole:
		// the Content-Length it was promised does not arrive.
		panic(http.ErrAbortHandler)
	}
}

// fileSafe keeps the letters, digits, - and _ of s, for a file name.
func fileSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, s)
	if s == "" {
		return "sensord"
	}
	return s
}

// restoreTimeout bounds receiving and checking a restore.
const restoreTimeout = 10 * time.Minute

// Restore serves POST /api/history/restore: the body is a backup file;
// it is checked before it replaces anything. It changes the history, so
// it must be mounted behind the owner's credential.
type Restore struct {
	Store       Archiver
	Unavailable string
	// refused counts restores refused for their file.
	History *History
}

// restored is a restore's answer.
type restored struct {
	Restored bool  `json:"restored"`
	Bytes    int64 `json:"bytes"`
	Start    int64 `json:"start,omitempty"` // the restored history's oldest reading, ms
}

// ServeHTTP implements http.Handler.
func (h *Restore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.Store == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "history is unavailable: "+h.Unavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), restoreTimeout)
	defer cancel()
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(restoreTimeout)) //nolint:errcheck // a recorder in tests has none
	body := &counter{r: http.MaxBytesReader(w, r.Body, history.MaxRestoreBytes)}
	err := h.Store.Restore(ctx, body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.History.refused.Add(1)
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the file is larger than %d MiB, more than any sensord history; nothing was changed", history.MaxRestoreBytes>>20))
		return
	case errors.Is(err, history.ErrNotHistory):
		h.History.refused.Add(1)
		httpjson.WriteError(w, http.StatusUnprocessableEntity, strings.TrimPrefix(err.Error(), "history: ")+"; nothing was changed")
		return
	case err != nil:
		h.History.fail(w, err)
		return
	}
	out := restored{Restored: true, Bytes: body.n}
	if t, ok, err := h.Store.Start(ctx); err == nil && ok {
		out.Start = t.UnixMilli()
	}
	httpjson.Write(w, http.StatusOK, out)
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
