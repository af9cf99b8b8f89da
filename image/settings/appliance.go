package settings

// flagVar is a Var for sensord flag name.
func flagVar(flag, def, doc string) Var {
	return Var{Name: EnvName(flag), Flag: flag, Default: def, Doc: doc}
}

// Appliance is the sensord.conf the image ships on its boot partition.
// Its flag list must match sensord's own (TestApplianceListsEverySensordFlag
// runs `sensord -h` and compares names and defaults).
func Appliance() File {
	return File{
		Header: `sensord.conf: the settings of your sensord appliance.

Edit this file on the SD card's boot partition (it shows up as a drive
named RASPIFIRM on any PC) before you boot the Pi, or later over ssh as
root: /boot/firmware/sensord.conf, then reboot.

To change a setting, remove the "#" in front of its line and edit the
value. Lines stay KEY=value: no spaces around "=", and put a value with
spaces in double quotes ("like this"). Double quotes and backslashes are
not allowed inside a value. Windows line endings are fine.

Flashed with Raspberry Pi Imager's OS customisation? The first boot
copies its host name, Wi-Fi, SSH keys and time zone into this file once
(journalctl -u sensord-imager says what it took and what it left); from
then on this file is the one that counts.

A bad SENSORD_* value does not stop the appliance: sensord logs it
(journalctl -u sensord), shows it on the dashboard and /healthz, and uses
the default.`,
		Sections: []Section{
			{
				Title: "The appliance",
				Doc:   "Applied on every boot by sensord-settings.service.",
				Vars: []Var{
					{Name: "HOSTNAME", Default: "sensord", Doc: "Network name: the dashboard is at http://<HOSTNAME>.local/\nLetters, digits and dashes, at most 63."},
					{Name: "WIFI_COUNTRY", Example: "GB", Doc: "Wi-Fi: your two-letter country code (the law decides which channels\nmay be used). Wired Ethernet needs none of the WIFI_* lines."},
					{Name: "WIFI_SSID", Example: "MyNetwork", Doc: "Wi-Fi: the network's name."},
					{Name: "WIFI_PASSPHRASE", Example: "my secret passphrase", Doc: "Wi-Fi: the WPA2/WPA3 passphrase (8 to 63 characters); leave it empty\nfor an open network."},
					{Name: "WIFI_PSK", Example: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Doc: "Wi-Fi: instead of WIFI_PASSPHRASE, the pre-computed WPA2 key (64 hex\ndigits), as Raspberry Pi Imager stores it. WPA2 only: a network that\nallows WPA3 only needs WIFI_PASSPHRASE."},
					{Name: "SSH_PUBKEY", Example: "ssh-ed25519 AAAA... me@laptop", Doc: "SSH: one public key (the line in ~/.ssh/id_ed25519.pub) allowed to\nlog in as root. Without a key the SSH server stays off."},
					{Name: "SSH_PUBKEY_2", Example: "", Doc: "SSH: more keys allowed to log in as root, one per line (up to SSH_PUBKEY_4)."},
					{Name: "SSH_PUBKEY_3", Example: "", Doc: ""},
					{Name: "SSH_PUBKEY_4", Example: "", Doc: ""},
					{Name: "TIMEZONE", Example: "Europe/London", Doc: "Time zone of the appliance's clock (the journal's times, date); unset\nkeeps UTC. The dashboard shows your browser's time either way."},
					{Name: "NTP_SERVER", Example: "192.168.1.1", Doc: "Time server(s) on your own network, separated by spaces, for a network\nwithout Internet (your router, Home Assistant). A Pi has no clock of its\nown: until a time server answers, readings wait in memory (see\nSENSORD_CLOCK_HOLD), or the owner sets the clock on the dashboard."},
					{Name: "SETUP_AP_PASSWORD", Example: "", Doc: "The setup access point: with no network it can use (no Wi-Fi set up\nand no cable, or the Wi-Fi network not joined for 3 minutes) the Pi\nopens its own Wi-Fi network, sensord-XXXX (the last 4 hex digits of its\nWi-Fi address), with a page to choose your network, passphrase, country\nand name. Empty: the access point is open to anyone in range; set a\npassword (8 to 63 characters, WPA2) to close it. See the README."},
				},
			},
			{
				Title: "sensord",
				Doc: `Every flag of the sensord daemon, as SENSORD_<FLAG>. Shown with its
default. Read by sensord.service (EnvironmentFile=) each time sensord
starts: systemctl restart sensord applies a change.`,
				Vars: []Var{
					flagVar("sensor", "dht22", "Sensor: dht22, sim (simulated, no hardware), bme280, aht20, am2320."),
					flagVar("pin", "GPIO4", "GPIO pin of the DHT22's data line (BCM numbering: GPIO4 is header pin 7)."),
					flagVar("power-pin", "", "GPIO pin the DHT22's VCC is wired to (empty: none). After 5 failed reads\nin a row sensord switches the sensor off for 3 s and on again."),
					flagVar("capture", "auto", "DHT22 edge timing: auto, cdev (GPIO character device, the one this\nimage's kernel has), mmap (/dev/gpiomem busy loop, Raspberry Pi OS kernels)."),
					flagVar("i2c-bus", "", "I2C bus of bme280, aht20 and am2320 (empty: the first, usually 1)."),
					flagVar("period", "2s", "Time between readings: 2s or more for real sensors (sim: 10ms or more)."),
					flagVar("topic", "sensors/dht22", "Topic of every reading."),
					flagVar("wholemsg", "false", "true: each frame is the whole message {topic,payload,_msgid};\nfalse: the payload only."),
					flagVar("mode", "server", "server (serve /ws/sensors), client (send readings to SENSORD_URL),\nor both."),
					flagVar("url", "", "ws:// or wss:// URL readings are sent to in client mode, e.g. a Node-RED\nwebsocket-in node: ws://nodered.local:1880/ws/sensors"),
					flagVar("token", "", "Bearer token every endpoint requires (empty: none). Browsers open\nhttp://<HOSTNAME>.local/?access_token=<token>."),
					flagVar("owner-token", "", "The owner's token: uploading updates (and any other change) needs it\nas Authorization: Bearer <token>; it also opens all SENSORD_TOKEN opens.\nEmpty: writing is off. 8 to 256 characters, e.g. from openssl rand -hex 16."),
					flagVar("allowed-hosts", "", "Comma-separated host names and addresses the dashboard answers to,\ne.g. sensord.local,192.168.1.20 (empty: any). Shuts out DNS rebinding."),
					flagVar("tls-cert", "", "HTTPS (port 443): your own PEM certificate file. Empty: this image\nmakes a self-signed one for <HOSTNAME>.local (see SENSORD_TLS_AUTO)."),
					flagVar("tls-key", "", "The PEM private key file of SENSORD_TLS_CERT."),
					flagVar("tls-auto", "", "Where the self-signed certificate is kept. sensord.service sets\n/var/lib/sensord/tls; an empty value here turns HTTPS off. Its SHA-256\nfingerprint is in journalctl -u sensord and on /healthz: compare it\nwith what the browser shows before you accept the certificate."),
					flagVar("https-redirect", "false", "true: plain http:// only redirects to https:// (port 443)."),
					flagVar("clock-hold", "false", "true: until the clock is set (by a time server, a battery-backed clock,\nor the owner from the dashboard) readings are kept in memory, then\nstored and sent to MQTT with their correct times. A Pi has no clock of\nits own, so sensord.service sets true on this image; false here stores\nreadings at once with whatever time the clock shows."),
					flagVar("url-ca", "", "PEM CA file the wss:// server of SENSORD_URL must chain to (empty: the\nsystem's roots). A user:password@ in SENSORD_URL is sent as Basic auth."),
					flagVar("listen", ":80", "Listen address. Ignored on this image: systemd listens on port 80\n(sensord.socket); change the port with systemctl edit sensord.socket."),
					flagVar("log-level", "info", "Log level: debug, info, warn or error."),
					flagVar("env-errors", "exit", "A bad SENSORD_* value: exit or warn. Ignored on this image:\nsensord.service passes -env-errors=warn, so the appliance always comes up."),
					flagVar("version", "false", "Print the version and exit. Leave it commented out."),
					flagVar("sim-jitter", "0s", "sim: timing jitter of each waveform edge, e.g. 5us."),
					flagVar("sim-error-rate", "0", "sim: probability 0..1 that a frame carries a flipped bit."),
					flagVar("sim-hang-after", "0s", "sim: stop answering after this long, so reads block and the watchdog\nrestarts sensord; 0s never. For testing."),
					flagVar("sim-temp", "", "sim: a fixed temperature in C, e.g. 21.5 (empty: a slow random walk)."),
					flagVar("sim-humidity", "", "sim: a fixed humidity in %RH, e.g. 48.2 (empty: a slow random walk)."),
					flagVar("sim-no-response", "false", "sim: never answer the start pulse (a disconnected sensor)."),
					flagVar("sim-stop-after", "0", "sim: stop answering after this many reads until SENSORD_POWER_PIN\ncycles the power; 0 never. For testing."),
					flagVar("history-dir", "", "Where readings are kept on disk. On this image sensord.service sets\n/var/lib/sensord; empty keeps them in memory only (lost at restart)."),
					flagVar("history-raw-retention", "168h0m0s", "How long every reading is kept (168h is 7 days)."),
					flagVar("history-retention", "8760h0m0s", "How long per-minute min/mean/max are kept (8760h is a year)."),
					flagVar("history-commit-interval", "1m0s", "Time between two writes to the SD card; a power cut loses at most this."),
					flagVar("temp-offset", "0", "Calibration: degrees C added to every temperature, e.g. -0.5."),
					flagVar("humidity-offset", "0", "Calibration: %RH added to every humidity (kept within 0..100)."),
					flagVar("frame-ancestors", "", "Origins allowed to embed the dashboard in a frame (a Home Assistant\nor Node-RED card), separated by spaces, e.g. http://homeassistant.local:8123"),
					flagVar("name", "", "The device's name: the dashboard's title, the MQTT topics\n(sensors/<name>/temperature) and the device in Home Assistant. Letters,\ndigits, - and _ (empty: the HOSTNAME). Give each Pi on one broker its own."),
					flagVar("mqtt-url", "", "MQTT broker readings are published to, e.g. Home Assistant's Mosquitto\nadd-on: mqtt://homeassistant.local:1883, or mqtts://broker:8883 (empty: MQTT off)."),
					flagVar("mqtt-user", "", "MQTT user name (Home Assistant: a user made for sensord)."),
					flagVar("mqtt-password", "", "MQTT password. Never logged or shown; this file is readable by root only."),
					flagVar("mqtt-ca", "", "mqtts: a PEM file of the CA that signed the broker's certificate, e.g.\n/etc/sensord/mqtt-ca.pem; not on this boot partition, which only root can\nread (empty: the system's trusted roots)."),
					flagVar("mqtt-prefix", "sensors", "First level of the reading topics: <prefix>/<name>/temperature, humidity,\nstate (the sensor_update JSON) and status (online/offline)."),
					flagVar("mqtt-discovery", "homeassistant", "Home Assistant's MQTT discovery prefix: the sensors appear in Home\nAssistant by themselves (empty: no discovery)."),
					flagVar("mqtt-discovery-form", "device", "device: one discovery config for the whole device (Home Assistant\n2024.11 and later); entities a card announced one by one move over with\ntheir history. entity: one config per entity, for older consumers."),
					flagVar("mqtt-subscribe", "sensors/#", "Topic filter whose messages the dashboard shows in its MQTT panel: every\nPi on the broker (empty: subscribe to nothing)."),
					flagVar("alert", "", "Alert rules, separated by ;, e.g. hot: temperature > 30 for 5m clear 29;\nfreeze: temperature < 3. Metrics: temperature, humidity, dew_point,\nabsolute_humidity (empty: only the built-in sensor_failing and no_reading)."),
					flagVar("alert-webhook", "", "URL every raised and cleared alert is POSTed to, e.g. an ntfy topic:\nhttps://ntfy.sh/my-fish-tank (empty: none)."),
				},
			},
		},
	}
}
