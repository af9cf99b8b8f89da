// Package cloudinit reads the part of a cloud-init NoCloud seed that
// Raspberry Pi Imager's "OS customisation" writes to the boot partition
// (user-data, network-config, meta-data, and its additions to
// cmdline.txt), so the appliance can carry those settings over into
// sensord.conf once (Import). It is a reader of data, never an agent:
// nothing in the files is run, installed or written anywhere but into
// sensord.conf, and whatever it does not use is listed, in words, in
// Settings.Ignored for the journal.
//
// # What Imager writes
//
// Read from rpi-imager's source (github.com/raspberrypi/rpi-imager):
//
//   - Imager 1.9 (v1.9.6: src/OptionsPopup.qml, applySettings;
//     src/downloadthread.cpp, _customizeImage): for an image file chosen
//     with "Use custom", the customisation format is "auto", which becomes
//     cloud-init when the FAT has no issue.txt naming pi-gen (ours has
//     none). It writes user-data ("#cloud-config", hostname, a users: list
//     whose entry carries ssh_authorized_keys, timezone, keyboard,
//     packages, apt) and network-config (top-level "version: 2" and
//     "wifis:", whose map holds "renderer: networkd" beside "wlan0"; the
//     SSID in double quotes as typed, UTF-8 unescaped; password: the
//     PBKDF2 key as 64 hex digits, or "" for an open network), no
//     meta-data, and appends " cfg80211.ieee80211_regdom=XX" to the
//     trimmed cmdline.txt: the Wi-Fi country is only there.
//   - Imager 2.x (v2.0.11: src/customization_generator.cpp,
//     generateCloudInitUserData and generateCloudInitNetworkConfig;
//     src/imagewriter.cpp, _applyCloudInitCustomisationFromSettings;
//     src/downloadthread.cpp, _customizeImage) customises only images
//     opened through a manifest, here with init_format "cloudinit". It
//     writes user-data (a singular user: with ssh_authorized_keys in
//     double quotes, timezone, runcmd), network-config under a top-level
//     "network:" key (ethernets and wifis; wlan0 carries
//     regulatory-domain; "hidden: true"; password: the 64-hex-digit key,
//     or "auth: key-management: none" for an open network), meta-data
//     ("instance-id: rpi-imager-<ms>") and appends
//     " cfg80211.ieee80211_regdom=XX ds=nocloud;i=rpi-imager-<ms>" to
//     cmdline.txt.
//
// Imager 2 writes each SSID octet outside printable ASCII as a \xHH
// escape in a YAML double-quoted string (yamlEscapeSsidOctets). YAML reads
// \xHH as the code point U+00HH, not as a byte, so a plain YAML reader
// turns "Caf\xc3\xa9" into "CafÃ©". In Imager 2's layout this package takes
// such a name's code points below 256 back as the octets Imager meant,
// when they form UTF-8 text.
//
// # Pre-computed keys and WPA3
//
// Both generations store the Wi-Fi passphrase only as its WPA2 pre-shared
// key (PBKDF2-SHA1 of the passphrase and the SSID). WPA3 (SAE) needs the
// passphrase itself, so a network that allows WPA3 only cannot be joined
// from what Imager wrote: the passphrase has to go into sensord.conf.
package cloudinit
