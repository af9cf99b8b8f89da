package update

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Outcomes of an update attempt (Outcome.Outcome).
const (
	OutcomeInstalled  = "installed"   // written to the other slot; boots on trial next
	OutcomeRefused    = "refused"     // nothing changed
	OutcomeCommitted  = "committed"   // the trial passed its health gate (or mark-good)
	OutcomeGaveUp     = "gave-up"     // the health gate failed the trial and rebooted
	OutcomeRolledBack = "rolled-back" // the initramfs went back to the committed slot
)

// Outcome is the last update attempt's result, /data/update/last: what
// `sensorctl status`, the journal and the dashboard's update panel show.
// The same KEY=value form as SlotState; Marshal writes it, ParseOutcome
// reads it.
type Outcome struct {
	Outcome string
	Version string
	Release uint64
	Slot    string
	Time    string // RFC 3339, UTC
	// Rule names what decided a commit or a rollback (the Rule constants).
	Rule   string
	Detail string
}

// Marshal is the file's content.
func (o Outcome) Marshal() ([]byte, error) {
	lines := []kv{{"outcome", o.Outcome}, {"version", o.Version}, {"release", strconv.FormatUint(o.Release, 10)},
		{"slot", o.Slot}, {"time", o.Time}, {"rule", o.Rule}, {"detail", o.Detail}}
	return marshalLines(lines, nil)
}

// ParseOutcome reads what Marshal wrote; unknown keys are ignored.
func ParseOutcome(r io.Reader) (Outcome, error) {
	var o Outcome
	err := parseLines(r, func(k, v, _ string) error {
		var err error
		switch k {
		case "outcome":
			o.Outcome = v
		case "version":
			o.Version = v
		case "release":
			o.Release, err = strconv.ParseUint(v, 10, 64)
		case "slot":
			o.Slot = v
		case "time":
			o.Time = v
		case "rule":
			o.Rule = v
		case "detail":
			o.Detail = v
		}
		return err
	})
	return o, err
}

// ReadOutcome reads the outcome file at path.
func ReadOutcome(path string) (Outcome, error) {
	f, err := os.Open(path)
	if err != nil {
		return Outcome{}, fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	o, err := ParseOutcome(f)
	if err != nil {
		return o, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}

// WriteOutcome replaces the outcome file at path (WriteFileAtomic). A
// detail with a line break (an error message) is joined into one line.
func WriteOutcome(path string, o Outcome) error {
	o.Detail = oneLine(o.Detail)
	b, err := o.Marshal()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, s))
}
