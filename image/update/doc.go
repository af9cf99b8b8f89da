// Package update reads, writes and verifies sensord's signed update
// bundles, keeps the A/B slot state the boot script (image/uboot) boots
// by, copies each slot's kernel, initramfs and device trees to the boot
// partition, and decides when a trial boot is committed.
//
// # The update states
//
// One card, two root slots, each with its own boot files: X is the
// committed slot, Y the other. Who moves each arrow is in brackets.
//
//	             sensorctl update FILE, or a dashboard upload
//	             (signature, release, hash checked first)
//	+-------------+ ---------------------------> +-------------+
//	| COMMITTED X |   an error or a power cut:   |  WRITING Y  |
//	|             | <--------------------------- | (not named) |
//	+-------------+   the state never names Y    +-------------+
//	  ^        ^                                        | written, read back, hash good;
//	  |        |                                        | Y's boot files to /slot-y/
//	  |        |                                        v [sensorctl: trial=Y tries=1]
//	  |        |                                 +-------------+
//	  |        |                                 | INSTALLED Y |
//	  |        |                                 +-------------+
//	  |        |                                        | reboot [boot.scr: boots=1,
//	  |        |                                        v  loads /slot-y/, boots Y]
//	  |        |  ROLLED BACK                    +-------------+
//	  |        +-------------------------------- | ON TRIAL Y  |
//	  |          the gate gives up and reboots   +-------------+
//	  |          (never-alive, sensor-broken),          |
//	  |          or the boot ends (boot-ended:          | the gate passes (alive,
//	  |          also a kernel that does not start,     | alive-and-sensor), or
//	  |          panics or hangs); [boot.scr, next      | mark-good [sensorctl:
//	  |          boot: boots=tries -> boots X,          v committed=Y,
//	  |          failed=Y; sensorctl: trial forgotten]    TrialPanics off]
//	  |                                          +-------------+
//	  +------------------------------------------| COMMITTED Y |
//	      Y is X for the next update             +-------------+
//
// # What commits a trial
//
// This is the one place the rule is defined; Gate implements it, and
// README.md and image/README.md point here.
//
// sensord judges itself from inside and writes its Verdict every
// VerdictInterval to a file in its runtime directory (/run/sensord): it
// is alive when it has sent READY, its HTTP listeners are serving, and its
// sensor loop and broadcasters make progress (the same test as its
// systemd watchdog); its sensor is reading when a good reading came
// within SensorFresh. At install, sensorctl records whether the sensor
// was reading then (SlotState.SensorAtInstall). On the trial boot,
// `sensorctl boot` (sensord-update.service) reads the verdict every few
// seconds:
//
//	rule              decides   when
//	alive             commit    sensord alive for HealthyFor (60 s) without a break,
//	                            and the sensor was NOT reading at install
//	alive-and-sensor  commit    sensord alive for HealthyFor without a break and
//	                            the sensor reading, as it was at install
//	never-alive       roll back Within (10 min) passed without HealthyFor alive
//	sensor-broken     roll back Within passed; sensord alive, but the sensor that
//	                            read at install is not reading
//	boot-ended        roll back the trial boot ended before the gate decided:
//	                            a crash of the system, a hang that the hardware
//	                            watchdog reset, a kernel panic (also on a hang the
//	                            kernel sees: TrialPanics), a power cut
//	mark-good         commit    by hand, as root: sensorctl mark-good
//
// So a Pi whose sensor was already failing before the update can commit,
// and a trial that breaks a sensor that was reading rolls back. The gate
// does not go through HTTP: -token, -allowed-hosts, -https-redirect, TLS
// and the listen address cannot make it fail, and a sensor failing half
// its reads still reads within a minute. The rule that decided is written
// to the journal, to /data/update/last (Outcome.Rule), and shown by
// `sensorctl status` and GET /api/update. A trial committed by mark-good
// while the gate still runs stays committed: the gate's later decision
// changes nothing (ErrCommitted).
//
// Before an install, ForecastInstall says from the same facts which rule
// would decide the trial and what would refuse the install or keep the
// trial from committing (Blocker); the dashboard shows it and warns before
// an upload (GET /api/update, forecast).
//
// # Bundles
//
// A bundle is one file (image/README.md, "Update bundles"):
//
//	magic      "SENSORD-BUNDLE-1\n"           17 bytes
//	length     manifest length, big-endian     4 bytes (at most MaxManifestBytes)
//	manifest   JSON, see Manifest
//	signature  ed25519 over magic+length+manifest  64 bytes
//	payload    the root slot's squashfs image, Manifest.PayloadBytes long
//
// The payload carries the slot's kernel, initramfs and device trees in
// its root (image/paths.SlotBoot); Install copies them to the slot's
// directory on the boot partition (WriteSlotBoot) before the state names
// the trial, so a bundle updates the kernel with the root.
//
// # Where the slot state lives
//
// On the boot partition (FAT), /sensord/state, where U-Boot's boot script
// reads it before any kernel runs (image/uboot/README.md): it counts the
// trial's boots in /sensord/boots, which only it writes. sensorctl writes
// the state, and a copy at /run/sensord-state for sensord, which may not
// read the boot partition. A card made before U-Boot chose the slot keeps
// the state on the data partition (/data/update/state), where its
// initramfs chooses; SlotKernels tells the two apart.
//
// The signature covers the manifest, and the manifest carries the payload's
// SHA-256 and length, so the payload is checked by streaming it through the
// hash: nothing of a bundle is trusted, written or acted upon before the
// signature over its manifest verifies, and a slot is made bootable only
// after the bytes written to it hash to the signed value. The manifest's
// release number orders bundles: one that is not newer than the committed
// slot's, or is the running one, is refused (CheckRelease) unless the
// person installing says --allow-downgrade.
package update
