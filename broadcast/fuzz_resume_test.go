package broadcast

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseSince: any query either has no since, a since in Unix
// milliseconds from 1970 to 9999, or an error that names since or the
// query; never a panic.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"", "since=1763856000123", "since=0", "since=-1", "since=yesterday", "since=1&since=2",
		"topic=sensors%2F%23&since=1763856000123", "since=99999999999999999999", "since=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		since, ok, err := parseSince(raw)
		switch {
		case err != nil:
			if ok || !strings.HasPrefix(err.Error(), "broadcast: ") || errors.Unwrap(err) == nil && !strings.Contains(err.Error(), "since") {
				t.Fatalf("%q: ok %v, err %v", raw, ok, err)
			}
		case ok:
			if ms := since.UnixMilli(); ms < 0 || ms > 253402300799999 {
				t.Fatalf("%q: since %d out of range", raw, ms)
			}
		}
	})
}
