// Package setupap is the appliance's setup access point: when the Pi has
// no network it can use, it opens its own Wi-Fi network (sensord-XXXX)
// and a person on a phone tells it which network to join.
//
// Two sides share this package:
//
//   - the root side (`sensorctl setup`, sensord-setup.service) decides
//     when setup mode starts and ends (Decider), opens and closes the
//     access point, scans, tries a network a person asked for and writes
//     it into sensord.conf; it publishes what it does as a State file in
//     /run (paths.SetupState);
//   - sensord (unprivileged) reads that State to serve the setup page on
//     the access point's address, and leaves a person's Request in its
//     runtime directory for the root side (sensord-setup-request.path).
//
// Neither trusts the other's file: both are read bounded, as data.
//
// The setup states:
//
//	       no usable network (Grace / JoinWait)
//	Station ---------------------------------------> Setup (access point open)
//	   ^  <----- SetupWait passed, a network is configured: retry it --'  |
//	   |  <----- a cable's carrier came ------------------------------'   | a Request
//	   |                                                                   v
//	   '------------------- joined: sensord.conf written ------------ Joining
//	                                  wrong passphrase, not found: Setup again, with the reason
package setupap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"sensord/internal/atomicfile"
)

// Phase is what the root side is doing about the network.
type Phase string

// The phases. Only PhaseSetup and PhaseJoined with the access point open
// (State.Active) serve the setup page.
const (
	// PhaseStation: the Pi uses its configured network or cable.
	PhaseStation Phase = "station"
	// PhaseSetup: the access point is open, waiting for a person.
	PhaseSetup Phase = "setup"
	// PhaseJoining: the access point is closed while the Pi tries the
	// network a person asked for.
	PhaseJoining Phase = "joining"
	// PhaseJoined: the Pi joined that network; the access point is open
	// again for JoinedShow to tell the person where the Pi went.
	PhaseJoined Phase = "joined"
)

// Network is one network of a scan, as the setup page lists it.
type Network struct {
	SSID string `json:"ssid"`
	// Signal is the received strength in dBm (closer to 0 is stronger).
	Signal int `json:"signal"`
	// Secured: the network needs a passphrase.
	Secured bool `json:"secured"`
}

// Joined says where the Pi went after a successful setup.
type Joined struct {
	SSID    string `json:"ssid"`
	Name    string `json:"name"`
	Address string `json:"address"`
}

// State is the root side's account of setup mode, in paths.SetupState.
// It holds no secret: sensord and anyone on the Pi may read it.
type State struct {
	Phase Phase `json:"phase"`
	// Active: the access point is open and sensord serves the setup page
	// on Address.
	Active bool `json:"active"`
	// Interface is the Wi-Fi interface the access point runs on.
	Interface string `json:"interface,omitempty"`
	// Address is the Pi's address on the access point (no prefix).
	Address string `json:"address,omitempty"`
	// SSID is the access point's name; Secured: it has a password
	// (SETUP_AP_PASSWORD).
	SSID    string `json:"ssid,omitempty"`
	Secured bool   `json:"secured,omitempty"`
	// Reason is why setup mode opened or, after a failed try, why the
	// network could not be joined, in a person's words.
	Reason string `json:"reason,omitempty"`
	// Failure is the kind of the last failed try (FailureWrongPassphrase,
	// FailureNotFound, FailureNoAddress), "" when none.
	Failure Failure `json:"failure,omitempty"`
	// Trying is the network being tried (PhaseJoining).
	Trying string `json:"trying,omitempty"`
	// Joined is set in PhaseJoined.
	Joined *Joined `json:"joined,omitempty"`
	// Networks is the last scan, strongest first.
	Networks []Network `json:"networks,omitempty"`
	// Since is when the phase began.
	Since time.Time `json:"since"`
}

// Failure is why a try to join a network failed.
type Failure string

// The failures of a try.
const (
	FailureWrongPassphrase Failure = "wrong-passphrase"
	FailureNotFound        Failure = "not-found"
	FailureNoAddress       Failure = "no-address"
)

// MaxStateBytes bounds the state file a reader accepts: MaxNetworks
// networks of 32-byte names, JSON-escaped (up to 6 bytes a byte), fit
// well inside it.
const MaxStateBytes = 64 << 10

// MaxNetworks bounds the networks a scan keeps (a crowded block of flats
// shows a few dozen).
const MaxNetworks = 64

// ErrState is wrapped by every error reading a state file.
var ErrState = errors.New("setupap: state")

// ReadState reads the state file at path. A missing file is the zero
// State (PhaseStation, not active) and no error: the root side has not
// started, or the image has none.
func ReadState(path string) (State, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{Phase: PhaseStation}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrState, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxStateBytes+1))
	if err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrState, err)
	}
	return ParseState(b)
}

// ParseState parses a state file's content.
func ParseState(b []byte) (State, error) {
	if len(b) > MaxStateBytes {
		return State{}, fmt.Errorf("%w: larger than %d bytes", ErrState, MaxStateBytes)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrState, err)
	}
	switch st.Phase {
	case PhaseStation, PhaseSetup, PhaseJoining, PhaseJoined:
	default:
		return State{}, fmt.Errorf("%w: unknown phase %q", ErrState, st.Phase)
	}
	if len(st.Networks) > MaxNetworks {
		st.Networks = st.Networks[:MaxNetworks]
	}
	return st, nil
}

// WriteState replaces the state file at path (readable by all: it holds
// no secret).
func WriteState(path string, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return atomicfile.WriteFile(path, b, 0o644)
}
