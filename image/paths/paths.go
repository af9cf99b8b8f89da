// Package paths names the places on the appliance that more than one of
// its parts use: the Go programs (sensord, sensorctl), the systemd units
// (image/rootfs/etc/systemd/system, systemd/) and the build and initramfs
// scripts (image/ab.sh, image/initramfs). The units and scripts cannot
// import it; paths_test.go checks that they spell each path the same.
package paths

// The data partition: everything written at run time, the slot state.
const (
	Data       = "/data"
	DataLabel  = "sensord-data"
	DataDevice = "/dev/disk/by-label/" + DataLabel
	// StateOnData and LastOnData are relative to the data partition's
	// root: the initramfs and the build see it elsewhere than at Data.
	StateOnData = "update/state"
	LastOnData  = "update/last"
	// State is the slot state (package update's State), Last the last
	// update's outcome (Outcome).
	State = Data + "/" + StateOnData
	Last  = Data + "/" + LastOnData
)

// Boot is where the initramfs tells the running system which slot it
// booted and how (package update's Boot).
const Boot = "/run/sensord-boot"

// ProcSys is where the kernel keeps its run-time switches: sensorctl turns
// a trial boot's hang panics off there when the trial commits (package
// update's TrialPanics).
const ProcSys = "/proc/sys"

// The boot partition (FAT) is mounted at BootPartition. SlotBoot, in
// each root slot, holds that slot's own kernel, initramfs and device trees
// (vmlinuz, initrd.img, dtbs/): the build puts them there, so a bundle
// carries them, and sensorctl copies them to the slot's directory on the
// boot partition when it installs the slot (package update's
// WriteSlotBoot, image/uboot/README.md).
const (
	BootPartition = "/boot/firmware"
	SlotBoot      = "/usr/lib/sensord/boot"
	// BootState is the slot state the boot script chooses by (package
	// update's ChooserDir and ChooserStateName); a card whose boot
	// partition lacks it keeps its state at State, where the initramfs
	// chooses. sensorctl writes it, and a copy at StateView for sensord,
	// which may not read the boot partition.
	BootState = BootPartition + "/sensord/state"
	StateView = "/run/sensord-state"
	// UBootFiles, in each root slot, holds U-Boot for the Pi and the
	// boot script, for sensorctl to move a card whose firmware loads the
	// kernel itself to them (package update's Migration).
	UBootFiles = "/usr/lib/sensord/uboot"
)

// The programs, their settings and the key bundles must be signed with.
const (
	Sensord   = "/usr/local/bin/sensord"
	Sensorctl = "/usr/local/sbin/sensorctl"
	Settings  = BootPartition + "/sensord.conf"
	UpdateKey = "/usr/lib/sensord/update-key.pem"
)

// sensord's own directories (its unit's StateDirectory= and
// RuntimeDirectory=, the only places it may write).
const (
	StateDir = "/var/lib/sensord"
	// SpoolDir is where sensord spools a dashboard upload; SpoolName is the
	// name the root path unit waits for, given only to a complete,
	// signature-checked upload.
	SpoolDir  = StateDir + "/update-spool"
	SpoolName = "bundle.update"
	Spooled   = SpoolDir + "/" + SpoolName
	// RuntimeDir is in /run (RAM): sensord's verdict on itself, rewritten
	// every few seconds, for the trial's health gate.
	RuntimeDir  = "/run/sensord"
	VerdictName = "verdict"
	Verdict     = RuntimeDir + "/" + VerdictName
	// ClockRequest is where sensord leaves the owner's request to set the
	// clock (POST /api/clock) for the root helper SetClock, which
	// sensord-setclock.path starts when the file appears.
	ClockRequestName = "clock-request"
	ClockRequest     = RuntimeDir + "/" + ClockRequestName
	SetClock         = "/usr/local/sbin/sensord-setclock"
)

// The settings page's hand-over (POST /api/settings): sensord writes a
// change to SettingsRequest in its runtime directory (RAM: secrets never
// touch the card there); sensord-settings-apply.path starts
// `sensorctl apply-settings`, which moves it into SettingsStateDir (root
// only may write there), checks it, writes Settings, restarts what must
// restart and records the outcome in SettingsStatus, which sensord reads.
// SettingsStateDir sits beside RuntimeDir, so sensord finds it from
// $RUNTIME_DIRECTORY wherever it runs; unlike RuntimeDir it outlives a
// restart of sensord.
const (
	SettingsRequestName = "settings-request"
	SettingsRequest     = RuntimeDir + "/" + SettingsRequestName
	SettingsStateDir    = "/run/sensord-settings"
	SettingsStatusName  = "last"
	SettingsStatus      = SettingsStateDir + "/" + SettingsStatusName
)

// ImagerReport is what `sensorctl imager-import` carried over from
// Raspberry Pi Imager's files and what it left (one line each, no secret),
// kept on the data partition for the settings page, which says it in
// words: Imager's user name and password, for one, are not used.
const ImagerReport = Data + "/settings/imager-import"

// HistoryFile and AlertStateFile are what sensord keeps in -history-dir
// (the readings' database, with SQLite's -wal and -shm beside it, and
// the alerts' state): what a reset that does not keep history removes.
const (
	HistoryFile    = "history.db"
	AlertStateFile = "alerts.json"
)

// Taken is where `sensorctl install-spool` moves a spooled upload before
// reading it: a directory only root can write, on the same filesystem as
// SpoolDir, so sensord can no longer swap the file.
const Taken = "/var/lib/sensord-update/upload.update"

// The setup access point (package image/setupap). The root side keeps its
// files in SetupDir (RAM, readable by sensord, no secrets in them);
// sensord leaves a person's setup request in its own runtime directory for
// sensord-setup-request.path, whose helper checks it and moves it to
// SetupJoin for the root side to try.
const (
	SetupDir         = "/run/sensord-setup"
	SetupState       = SetupDir + "/state"
	SetupJoin        = SetupDir + "/join"
	SetupRequestName = "setup-request"
	SetupRequest     = RuntimeDir + "/" + SetupRequestName
	// SettingsApply is the boot script that applies sensord.conf; the
	// root side runs it again after a join to write the Wi-Fi settings.
	SettingsApply = "/usr/local/sbin/sensord-settings"
)
