package update

import (
	"errors"
	"fmt"
	"time"
)

// Blocker names what stands between an install now and a committed
// trial (Forecast.Blocker); "" is nothing.
type Blocker string

// Blockers, each found in what the updater or the gate does: the first
// three are refusals of Install (or of the dashboard's upload), the last
// is a trial that cannot pass the gate.
const (
	// BlockerUploadPending: an upload already waits for (or is in) the
	// updater; the dashboard refuses another.
	BlockerUploadPending Blocker = "upload-pending"
	// BlockerTrialPending: a trial waits for its boot (SlotState.Trial);
	// Install refuses with ErrBusy.
	BlockerTrialPending Blocker = "trial-pending"
	// BlockerRunningOnTrial: the running slot is a trial not yet
	// committed; Install refuses with ErrBusy, as writing the other slot
	// would overwrite the one to roll back to.
	BlockerRunningOnTrial Blocker = "running-on-trial"
	// BlockerStateUnreadable: the boot note or the slot state does not
	// read; Install (and the upload's release check) cannot run.
	BlockerStateUnreadable Blocker = "state-unreadable"
	// BlockerNotAlive: sensord is not alive by the gate's own test
	// (Verdict.Alive) now; a trial with the same problem never stays
	// alive for HealthyFor and rolls back (RuleNeverAlive).
	BlockerNotAlive Blocker = "not-alive"
)

// Forecast is what would decide the trial of a bundle installed now, and
// what stands in the way, in words a person reads before an upload.
type Forecast struct {
	// Rule is the rule that would commit the trial: RuleAliveAndSensor
	// when the sensor reads now (the install records it), RuleAlive when
	// not.
	Rule string
	// SensorAtInstall is what an install now records (SensorAtInstall).
	SensorAtInstall    string
	HealthyFor, Within time.Duration
	// Says what will decide the trial.
	Says string
	// Blocker and Warning: why an install now would be refused, or why
	// its trial could not commit; empty when nothing stands in the way.
	Blocker Blocker
	Warning string
}

// Inputs of ForecastInstall: what the updater and the gate would read now.
type ForecastInput struct {
	Boot    Boot
	State   SlotState
	BootErr error // reading Boot
	// StateErr: reading State.
	StateErr error
	// Verdict is sensord's verdict file read now (ReadVerdict), with its
	// error and whether it is stale.
	Verdict    Verdict
	VerdictErr error
	Stale      bool
	// Pending: an upload already waits for the updater.
	Pending bool
	// HealthyFor and Within are the gate's timing (zero: the defaults).
	HealthyFor, Within time.Duration
}

// ForecastInstall says what would decide the trial of a bundle installed
// now, from the same facts Install and the gate use: the sensor's state
// as SensorAtInstall would record it, and what Install would refuse or
// the gate could not pass.
func ForecastInstall(in ForecastInput) Forecast {
	f := Forecast{HealthyFor: in.HealthyFor, Within: in.Within}
	if f.HealthyFor == 0 {
		f.HealthyFor = DefaultHealthyFor
	}
	if f.Within == 0 {
		f.Within = DefaultWithin
	}
	if err := errors.Join(in.BootErr, in.StateErr); err != nil {
		f.Blocker = BlockerStateUnreadable
		f.Warning = fmt.Sprintf("The updater's state cannot be read (%v): an update now is refused.", err)
		return f
	}
	back := in.State.Slot(in.State.Committed).Version
	if back == "" {
		back = "slot " + in.State.Committed
	} else {
		back = "version " + back
	}
	v := in.Verdict
	switch {
	case in.VerdictErr != nil || in.Stale:
		why := "sensord has stopped writing it"
		if in.VerdictErr != nil {
			why = in.VerdictErr.Error()
		}
		f.Rule, f.SensorAtInstall = RuleAlive, SensorNotReading
		f.Says = fmt.Sprintf("sensord's report for the update's health gate cannot be read now (%s), so an install records the sensor as not reading and only sensord's own liveness counts: the trial commits once sensord is alive for %s without a break, and rolls back to %s if that does not happen within %s.",
			why, words(f.HealthyFor), back, words(f.Within))
	case !v.Alive:
		f.Rule, f.SensorAtInstall = RuleAlive, SensorNotReading
		f.Says = fmt.Sprintf("An install now records the sensor as not reading, so only sensord's own liveness counts: the trial commits once sensord is alive for %s without a break, and rolls back to %s if that does not happen within %s.",
			words(f.HealthyFor), back, words(f.Within))
		f.Blocker = BlockerNotAlive
		f.Warning = fmt.Sprintf("sensord is not alive by the health gate's own test right now (%s). A new version with the same problem never stays alive for %s and rolls back to %s after %s.",
			v.Problem, words(f.HealthyFor), back, words(f.Within))
	case v.SensorReading:
		f.Rule, f.SensorAtInstall = RuleAliveAndSensor, SensorReading
		f.Says = fmt.Sprintf("The sensor reads well now, so the trial must keep it reading: it commits once sensord is alive for %s without a break with a good reading, and rolls back to %s if that does not happen within %s (a new version that breaks the sensor is undone).",
			words(f.HealthyFor), back, words(f.Within))
	case v.SensorWaiting:
		f.Rule, f.SensorAtInstall = RuleAlive, SensorNotReading
		f.Says = fmt.Sprintf("The sensor has not finished its first read yet: if it reads by the install, the trial must keep it reading; if not, only sensord's own liveness counts. Either way the trial commits once sensord is alive for %s without a break, and rolls back to %s if that does not happen within %s.",
			words(f.HealthyFor), back, words(f.Within))
	default:
		f.Rule, f.SensorAtInstall = RuleAlive, SensorNotReading
		f.Says = fmt.Sprintf("The sensor is not reading now (%s), so only sensord's own liveness counts: the trial commits once sensord is alive for %s without a break, and rolls back to %s if that does not happen within %s.",
			v.SensorProblem, words(f.HealthyFor), back, words(f.Within))
	}
	// Refusals come before a trial that could not commit: nothing is
	// installed at all.
	if in.Pending {
		f.Blocker = BlockerUploadPending
		f.Warning = "An uploaded update is already waiting for the updater: another upload is refused until it has been installed (the device then reboots into its trial)."
	} else if b, err := in.State.busy(in.Boot.Slot); b != "" {
		f.Blocker = b
		f.Warning = fmt.Sprintf("An upload now would arrive and then be refused by the updater, which installs nothing (%v).", err)
	}
	return f
}

// busy is why Install must refuse to write the slot beside running: a
// trial waits for its boot, or the running slot is a trial not yet
// committed (writing the other slot would overwrite the one to roll back
// to). The error wraps ErrBusy.
func (st SlotState) busy(running string) (Blocker, error) {
	if st.Trial != "" {
		return BlockerTrialPending, fmt.Errorf("%w: slot %s (%s) boots on trial next; reboot first", ErrBusy, st.Trial, st.Slot(st.Trial).Version)
	}
	if st.Committed != running {
		return BlockerRunningOnTrial, fmt.Errorf("%w: the running slot %s is on trial; wait until it is committed", ErrBusy, running)
	}
	return "", nil
}

// words is d as a person says it: "60 s", "10 minutes".
func words(d time.Duration) string {
	if d >= 2*time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return fmt.Sprintf("%d s", d/time.Second)
}
