package cloudinit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

const (
	// MaxFileBytes bounds each file the reader takes. Imager's are a few
	// KiB (the longest line is an SSH key: an RSA-16384 key is about 2.8
	// KiB), and the YAML parser's memory grows with its input.
	MaxFileBytes = 64 << 10
	// MaxSSHKeys bounds the keys taken from the files: more than anyone
	// lists, few enough that the report stays readable.
	MaxSSHKeys = 32
	// maxSSIDBytes is IEEE 802.11's limit on a network name.
	maxSSIDBytes = 32
)

// Kinds of error, for errors.Is.
var (
	ErrTooLarge = errors.New("file too large")
	ErrSyntax   = errors.New("not valid YAML")
	ErrType     = errors.New("wrong type")
	ErrValue    = errors.New("bad value")
)

// Error is a problem in one of the files, said in one line.
type Error struct {
	File string // user-data, network-config, meta-data, cmdline.txt
	Line int    // 0: the file as a whole
	Msg  string
	Kind error // ErrTooLarge, ErrSyntax, ErrType or ErrValue
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("cloudinit: %s line %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("cloudinit: %s: %s", e.File, e.Msg)
}

func (e *Error) Unwrap() error { return e.Kind }

// Generation is the Imager that wrote a seed, told by its layout.
type Generation int

const (
	GenerationUnknown Generation = iota
	Imager1                      // Imager 1.8/1.9: users:, top-level wifis:
	Imager2                      // Imager 2.x: user:, network:, meta-data, ds=nocloud
)

func (g Generation) String() string {
	switch g {
	case Imager1:
		return "Raspberry Pi Imager 1.x"
	case Imager2:
		return "Raspberry Pi Imager 2.x"
	}
	return "an unknown writer"
}

// Seed is the files as found on the boot partition; a nil slice is a file
// that is not there.
type Seed struct {
	UserData, NetworkConfig, MetaData []byte
	Cmdline                           string
}

// WiFi is the one network the files name.
type WiFi struct {
	SSID string
	// Passphrase is a WPA passphrase (8 to 63 characters); PSK the
	// pre-computed key, 64 lower-case hex digits. Both empty: an open
	// network.
	Passphrase, PSK string
	Hidden          bool
}

// Open reports whether the network has no password.
func (w WiFi) Open() bool { return w.Passphrase == "" && w.PSK == "" }

// Settings is what the files say that the appliance uses, and, in words,
// what they say that it does not.
type Settings struct {
	Generation Generation
	InstanceID string
	Hostname   string
	TimeZone   string
	Country    string // Wi-Fi country, two upper-case letters
	WiFi       *WiFi
	SSHKeys    []string
	Ignored    []string
}

// Parse reads a seed. Any file that is not what Imager writes (not YAML,
// a list where text belongs, a host name that is not one) is an *Error,
// and then nothing of the seed is used.
func Parse(s Seed) (Settings, error) {
	var st Settings
	var signs []Generation
	if s.UserData != nil {
		g, err := st.userData(s.UserData)
		if err != nil {
			return Settings{}, err
		}
		signs = append(signs, g)
	}
	if s.MetaData != nil {
		if err := st.metaData(s.MetaData); err != nil {
			return Settings{}, err
		}
		signs = append(signs, Imager2)
	}
	var netRegdom string
	if s.NetworkConfig != nil {
		g, rd, err := st.networkConfig(s.NetworkConfig)
		if err != nil {
			return Settings{}, err
		}
		netRegdom = rd
		signs = append(signs, g)
	}
	cmdRegdom, cmdID := cmdline(s.Cmdline)
	if cmdID != "" {
		signs = append(signs, Imager2)
		if st.InstanceID == "" {
			st.InstanceID = cmdID
		}
	}
	switch {
	case slices.Contains(signs, Imager2):
		st.Generation = Imager2
	case slices.Contains(signs, Imager1):
		st.Generation = Imager1
	}
	country, from := netRegdom, "network-config"
	if country == "" {
		country, from = cmdRegdom, "cmdline.txt"
	}
	if country != "" {
		if !countryRE.MatchString(country) {
			return Settings{}, &Error{File: from, Msg: fmt.Sprintf("Wi-Fi country %q is not a two-letter country code", country), Kind: ErrValue}
		}
		st.Country = strings.ToUpper(country)
	}
	return st, nil
}

var (
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	countryRE  = regexp.MustCompile(`^[A-Za-z]{2}$`)
	// timeZoneRE: an IANA name such as Europe/London or Etc/GMT+1, or UTC.
	timeZoneRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}$`)
	keyTypeRE  = regexp.MustCompile(`^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$`)
	hexKeyRE   = regexp.MustCompile(`^[0-9A-Fa-f]{64}$`)
)

// cmdline returns the Wi-Fi country and the NoCloud instance ID Imager
// appended to cmdline.txt.
func cmdline(c string) (regdom, instanceID string) {
	for _, f := range strings.Fields(c) {
		if v, ok := strings.CutPrefix(f, "cfg80211.ieee80211_regdom="); ok {
			regdom = v
		}
		if v, ok := strings.CutPrefix(f, "ds=nocloud"); ok {
			for _, p := range strings.Split(v, ";") {
				if id, ok := strings.CutPrefix(p, "i="); ok {
					instanceID = id
				}
			}
		}
	}
	return regdom, instanceID
}

// doc is one YAML file being read.
type doc struct{ file string }

func (d doc) errf(n *yaml.Node, kind error, format string, a ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: d.file, Line: line, Msg: fmt.Sprintf(format, a...), Kind: kind}
}

// parse returns the file's top-level mapping (nil for an empty file).
func (d doc) parse(b []byte) (root *yaml.Node, err error) {
	if len(b) > MaxFileBytes {
		return nil, &Error{File: d.file, Msg: fmt.Sprintf("%d bytes, more than the %d this reader takes", len(b), MaxFileBytes), Kind: ErrTooLarge}
	}
	var n yaml.Node
	func() {
		// The parser is outside code fed outside input: a panic in it must
		// be this file's error, not the boot's.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("the YAML parser failed: %v", r)
			}
		}()
		err = yaml.Unmarshal(b, &n)
	}()
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.Join(strings.Fields(msg), " ")
		return nil, &Error{File: d.file, Msg: msg, Kind: ErrSyntax}
	}
	if len(n.Content) == 0 {
		return nil, nil
	}
	root = n.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, d.errf(root, ErrType, "the file is %s, want a mapping of settings", kindOf(root))
	}
	return root, nil
}

// kindOf names a node's kind in words.
func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias (*" + n.Value + ")"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "empty"
		case "!!bool":
			return "true/false"
		case "!!int", "!!float":
			return "a number"
		}
		return "text"
	}
	return "a document"
}

// pairs calls f for each key and value of mapping m, in order.
func (d doc) pairs(m *yaml.Node, f func(key string, k, v *yaml.Node) error) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.errf(k, ErrType, "a key is %s, want text", kindOf(k))
		}
		if err := f(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (d doc) text(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", d.errf(n, ErrType, "%s is %s, want text", what, kindOf(n))
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	return n.Value, nil
}

func (d doc) mapping(n *yaml.Node, what string) (*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, d.errf(n, ErrType, "%s is %s, want a mapping", what, kindOf(n))
	}
	return n, nil
}

func (d doc) list(n *yaml.Node, what string) ([]*yaml.Node, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n, ErrType, "%s is %s, want a list", what, kindOf(n))
	}
	return n.Content, nil
}

func (d doc) boolean(n *yaml.Node, what string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, d.errf(n, ErrType, "%s is %s, want true or false", what, kindOf(n))
}

func (st *Settings) ignore(format string, a ...any) {
	st.Ignored = append(st.Ignored, fmt.Sprintf(format, a...))
}

// userData reads user-data: #cloud-config, then a mapping.
func (st *Settings) userData(b []byte) (Generation, error) {
	d := doc{"user-data"}
	if len(b) > MaxFileBytes {
		_, err := d.parse(b)
		return GenerationUnknown, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	first = strings.TrimSpace(first)
	if strings.HasPrefix(first, "#!") {
		return 0, &Error{File: d.file, Msg: "it is a script (#!), which this appliance never runs", Kind: ErrValue}
	}
	if first != "#cloud-config" {
		return 0, &Error{File: d.file, Msg: "it does not start with #cloud-config", Kind: ErrValue}
	}
	root, err := d.parse(b)
	if err != nil || root == nil {
		return GenerationUnknown, err
	}
	gen := GenerationUnknown
	var keys []string
	err = d.pairs(root, func(key string, k, v *yaml.Node) error {
		switch key {
		case "hostname":
			h, err := d.text(v, "hostname")
			if err != nil {
				return err
			}
			if !hostnameRE.MatchString(h) {
				return d.errf(v, ErrValue, "hostname %q is not a host name (letters, digits and dashes, at most 63)", h)
			}
			st.Hostname = h
		case "timezone":
			tz, err := d.text(v, "timezone")
			if err != nil {
				return err
			}
			if !timeZoneRE.MatchString(tz) || strings.Contains(tz, "..") {
				return d.errf(v, ErrValue, "timezone %q is not a time zone name such as Europe/London", tz)
			}
			st.TimeZone = tz
		case "user":
			gen = Imager2
			u, err := d.user(v)
			if err != nil {
				return err
			}
			keys = append(keys, u.keys...)
			st.noteUser(u)
		case "users":
			gen = Imager1
			items, err := d.list(v, "users")
			if err != nil {
				return err
			}
			for _, it := range items {
				if it.Kind == yaml.ScalarNode && it.Value == "default" {
					continue
				}
				u, err := d.user(it)
				if err != nil {
					return err
				}
				keys = append(keys, u.keys...)
				st.noteUser(u)
			}
		case "ssh_authorized_keys":
			ks, err := d.keys(v)
			if err != nil {
				return err
			}
			keys = append(keys, ks...)
		case "runcmd", "bootcmd":
			st.ignore("%s (%s): never run", key, count(v, "command"))
		case "write_files":
			st.ignore("write_files (%s): not written", count(v, "file"))
		case "packages":
			st.ignore("packages (%s): not installed; the image carries what it needs", names(v, "package"))
		case "ssh_pwauth":
			st.ignore("ssh_pwauth: SSH password logins stay off; root logs in with a key")
		case "keyboard":
			st.ignore("keyboard layout: the appliance has no keyboard console")
		case "manage_etc_hosts", "manage_resolv_conf", "apt", "locale":
			st.ignore("%s: the appliance manages this itself", key)
		case "rpi":
			st.ignore("rpi (interfaces, USB gadget): not supported")
		default:
			st.ignore("%s: not supported", key)
		}
		return nil
	})
	if err != nil {
		return gen, err
	}
	for _, k := range keys {
		if !slices.Contains(st.SSHKeys, k) {
			st.SSHKeys = append(st.SSHKeys, k)
		}
	}
	if len(st.SSHKeys) > MaxSSHKeys {
		return gen, &Error{File: d.file, Msg: fmt.Sprintf("%d SSH keys, more than the %d this reader takes", len(st.SSHKeys), MaxSSHKeys), Kind: ErrValue}
	}
	return gen, nil
}

type user struct {
	name     string
	password bool
	keys     []string
}

// user reads one user: a mapping (or, as cloud-init allows, a bare name).
func (d doc) user(n *yaml.Node) (user, error) {
	var u user
	if n.Kind == yaml.ScalarNode {
		name, err := d.text(n, "user")
		u.name = name
		return u, err
	}
	m, err := d.mapping(n, "a user")
	if err != nil {
		return u, err
	}
	err = d.pairs(m, func(key string, k, v *yaml.Node) error {
		switch key {
		case "name":
			u.name, err = d.text(v, "the user's name")
			return err
		case "passwd", "hashed_passwd", "plain_text_passwd":
			u.password = true
		case "ssh_authorized_keys":
			u.keys, err = d.keys(v)
			return err
		}
		return nil
	})
	return u, err
}

func (st *Settings) noteUser(u user) {
	what := fmt.Sprintf("user %q", u.name)
	if u.password {
		what += " and its password"
	}
	st.ignore("%s: not used; SSH logs in as root, with keys only", what)
}

// keys reads a list of SSH public keys.
func (d doc) keys(n *yaml.Node) ([]string, error) {
	items, err := d.list(n, "ssh_authorized_keys")
	if err != nil {
		return nil, err
	}
	var out []string
	for i, it := range items {
		what := fmt.Sprintf("SSH key %d", i+1)
		k, err := d.text(it, what)
		if err != nil {
			return nil, err
		}
		k = strings.TrimSpace(k)
		f := strings.Fields(k)
		if len(f) < 2 || !keyTypeRE.MatchString(f[0]) || strings.ContainsAny(k, "\r\n") {
			return nil, d.errf(it, ErrValue, "%s is not an SSH public key (ssh-ed25519 AAAA... comment)", what)
		}
		if _, err := base64.StdEncoding.DecodeString(f[1]); err != nil {
			return nil, d.errf(it, ErrValue, "%s is not an SSH public key: its key is not base64", what)
		}
		out = append(out, k)
	}
	return out, nil
}

// count says how many items a list holds, in words.
func count(n *yaml.Node, noun string) string {
	c := 1
	if n.Kind == yaml.SequenceNode {
		c = len(n.Content)
	}
	if c == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", c, noun)
}

// names lists a list's plain-text items, or counts them.
func names(n *yaml.Node, noun string) string {
	var s []string
	if n.Kind == yaml.SequenceNode {
		for _, it := range n.Content {
			if it.Kind != yaml.ScalarNode || len(s) == 8 {
				return count(n, noun)
			}
			s = append(s, it.Value)
		}
	}
	if len(s) == 0 {
		return count(n, noun)
	}
	return strings.Join(s, ", ")
}

// metaData reads meta-data: the instance ID, for the report.
func (st *Settings) metaData(b []byte) error {
	d := doc{"meta-data"}
	root, err := d.parse(b)
	if err != nil || root == nil {
		return err
	}
	return d.pairs(root, func(key string, k, v *yaml.Node) error {
		if key == "instance-id" {
			id, err := d.text(v, "instance-id")
			st.InstanceID = id
			return err
		}
		return nil
	})
}

// networkConfig reads network-config (netplan version 2, bare or under
// network:) and returns the layout's generation and the regulatory domain.
func (st *Settings) networkConfig(b []byte) (Generation, string, error) {
	d := doc{"network-config"}
	root, err := d.parse(b)
	if err != nil || root == nil {
		return GenerationUnknown, "", err
	}
	gen := Imager1
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "network" {
			gen = Imager2
			if root, err = d.mapping(root.Content[i+1], "network"); err != nil {
				return gen, "", err
			}
			break
		}
	}
	var regdom string
	err = d.pairs(root, func(key string, k, v *yaml.Node) error {
		switch key {
		case "version":
			ver, err := d.text(v, "version")
			if err != nil {
				return err
			}
			if ver != "2" {
				return d.errf(v, ErrValue, "version %q: only version 2 (netplan's) is read", ver)
			}
		case "wifis":
			m, err := d.mapping(v, "wifis")
			if err != nil {
				return err
			}
			return d.pairs(m, func(iface string, k, v *yaml.Node) error {
				if iface == "renderer" && v.Kind == yaml.ScalarNode {
					return nil // Imager 1.9 writes it inside wifis:
				}
				rd, err := st.wifiInterface(d, gen, iface, v)
				if rd != "" {
					regdom = rd
				}
				return err
			})
		case "ethernets", "renderer":
			// Wired ports always use DHCP on the appliance, as Imager asks.
		default:
			st.ignore("network-config %s: not supported", key)
		}
		return nil
	})
	return gen, regdom, err
}

// wifiInterface reads one interface under wifis:.
func (st *Settings) wifiInterface(d doc, gen Generation, iface string, n *yaml.Node) (regdom string, err error) {
	m, err := d.mapping(n, "wifis "+iface)
	if err != nil {
		return "", err
	}
	err = d.pairs(m, func(key string, k, v *yaml.Node) error {
		switch key {
		case "access-points":
			aps, err := d.mapping(v, "access-points")
			if err != nil {
				return err
			}
			return d.pairs(aps, func(_ string, k, v *yaml.Node) error {
				w, err := d.accessPoint(gen, k, v)
				if err != nil {
					return err
				}
				if st.WiFi != nil {
					st.ignore("Wi-Fi network %q: sensord.conf holds one network", w.SSID)
					return nil
				}
				st.WiFi = &w
				return nil
			})
		case "regulatory-domain":
			regdom, err = d.text(v, "regulatory-domain")
			return err
		case "dhcp4", "dhcp6", "optional":
		case "addresses", "routes", "nameservers", "gateway4", "gateway6":
			st.ignore("%s on %s: the appliance uses DHCP", key, iface)
		default:
			st.ignore("%s on %s: not supported", key, iface)
		}
		return nil
	})
	return regdom, err
}

// accessPoint reads one entry of access-points: its key is the SSID.
func (d doc) accessPoint(gen Generation, k, v *yaml.Node) (WiFi, error) {
	var w WiFi
	ssid, err := d.text(k, "a Wi-Fi network's name")
	if err != nil {
		return w, err
	}
	if gen == Imager2 {
		ssid = octets(ssid)
	}
	if ssid == "" || len(ssid) > maxSSIDBytes {
		return w, d.errf(k, ErrValue, "Wi-Fi network name %q: want 1 to %d bytes", ssid, maxSSIDBytes)
	}
	w.SSID = ssid
	var password string
	open := false
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		v = &yaml.Node{Kind: yaml.MappingNode}
	}
	m, err := d.mapping(v, fmt.Sprintf("Wi-Fi network %q", ssid))
	if err != nil {
		return w, err
	}
	err = d.pairs(m, func(key string, k, v *yaml.Node) error {
		switch key {
		case "password":
			password, err = d.text(v, "password")
			return err
		case "hidden":
			w.Hidden, err = d.boolean(v, "hidden")
			return err
		case "auth":
			am, err := d.mapping(v, "auth")
			if err != nil {
				return err
			}
			return d.pairs(am, func(key string, k, v *yaml.Node) error {
				switch key {
				case "key-management":
					km, err := d.text(v, "key-management")
					if err != nil {
						return err
					}
					switch km {
					case "none":
						open = true
					case "psk", "sae":
					default:
						return d.errf(v, ErrValue, "key-management %q: only none, psk and sae networks can be joined", km)
					}
				case "password":
					password, err = d.text(v, "password")
					return err
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return w, err
	}
	switch {
	case open || password == "":
	case hexKeyRE.MatchString(password):
		w.PSK = strings.ToLower(password)
	case len(password) >= 8 && len(password) <= 63:
		w.Passphrase = password
	default:
		return w, d.errf(v, ErrValue, "the password of Wi-Fi network %q is neither a passphrase (8 to 63 characters) nor a key (64 hex digits)", ssid)
	}
	return w, nil
}

// octets undoes Imager 2's escaping of a network name: each \xHH it
// wrote is one octet, which YAML reads as the code point U+00HH. A name
// whose code points are all below 256 is taken as those octets when they
// are UTF-8 text; anything else is kept as YAML read it.
func octets(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return s
		}
		b = append(b, byte(r))
	}
	if !utf8.Valid(b) {
		return s
	}
	return string(b)
}
