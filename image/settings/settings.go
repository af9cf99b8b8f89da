// Package settings renders sensord.conf, the one settings file a person
// edits on the SD card's boot partition (FAT, readable from any PC) before
// the first boot.
//
// The file is read twice on the appliance, by two readers with two syntaxes
// that must agree:
//
//   - systemd, through sensord.service's EnvironmentFile=, which passes every
//     SENSORD_* line to the daemon as its flag's environment variable;
//   - sensord-settings (image/rootfs/usr/local/sbin/sensord-settings), which
//     applies HOSTNAME, WIFI_*, SSH_PUBKEY* and TIMEZONE on every boot.
//
// Edit changes a file a person may have edited, keeping everything else
// in it: `sensorctl imager-import` carries Raspberry Pi Imager's settings
// into it that way.
//
// So the file is plain KEY=value lines, # comments, values optionally in
// double quotes, nothing a shell would expand. Every sensord flag is listed,
// commented out, with its default, so the file doubles as the reference.
package settings

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Var is one setting: a line in the file, with the comment above it.
type Var struct {
	Name    string // environment variable, e.g. SENSORD_PERIOD
	Flag    string // the sensord flag it sets ("" for the appliance's own settings)
	Default string // the value used when the line is absent or commented out
	Doc     string // one or more lines of help, without "# "
	// Example is shown commented out instead of Default where the default
	// (often empty) would teach nothing, e.g. an SSID.
	Example string
}

// Section groups variables under a heading.
type Section struct {
	Title string
	Doc   string
	Vars  []Var
}

// File is the whole settings file.
type File struct {
	Header   string
	Sections []Section
}

// Render writes f with every variable commented out, except those named in
// set, which are written as NAME=value (active) in their place. A name in set
// that f does not list is an error: a typo in a test's settings must not
// silently do nothing.
func Render(w io.Writer, f File, set map[string]string) error {
	known := make(map[string]bool)
	for _, s := range f.Sections {
		for _, v := range s.Vars {
			known[v.Name] = true
		}
	}
	var unknown []string
	for k := range set {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("settings: unknown variables %s", strings.Join(unknown, ", "))
	}
	for k, v := range set {
		if err := checkValue(v); err != nil {
			return fmt.Errorf("settings: %s: %w", k, err)
		}
	}

	bw := bufio.NewWriter(w)
	comment(bw, f.Header)
	for _, s := range f.Sections {
		fmt.Fprintf(bw, "\n# ---- %s ----\n", s.Title)
		if s.Doc != "" {
			comment(bw, s.Doc)
		}
		for _, v := range s.Vars {
			doc := v.Doc
			if v.Flag != "" {
				doc = "-" + v.Flag + ": " + doc
			}
			// A variable without a doc belongs to the one above it
			// (SSH_PUBKEY_2, _3, ...): no blank line between them.
			if doc != "" {
				bw.WriteString("\n")
				comment(bw, doc)
			}
			if val, ok := set[v.Name]; ok {
				fmt.Fprintf(bw, "%s=%s\n", v.Name, quote(val))
				continue
			}
			shown := v.Default
			if v.Example != "" {
				shown = v.Example
			}
			fmt.Fprintf(bw, "#%s=%s\n", v.Name, quote(shown))
		}
	}
	return bw.Flush()
}

// comment writes text as "# " lines ("#" alone for an empty line).
func comment(w *bufio.Writer, text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if l == "" {
			w.WriteString("#\n")
			continue
		}
		w.WriteString("# " + l + "\n")
	}
}

// quote double-quotes a value that is empty or holds spaces, so both readers
// see the same string: systemd strips the quotes, and so does
// sensord-settings. Values never contain a double quote or a backslash
// (checkValue), which is what keeps the two readers in agreement.
func quote(v string) string {
	if v == "" || strings.ContainsAny(v, " \t#'") {
		return `"` + v + `"`
	}
	return v
}

// checkValue refuses what the two readers would parse differently.
func checkValue(v string) error {
	if strings.ContainsAny(v, "\"\\\n\r") {
		return fmt.Errorf("value %q: no double quotes, backslashes or line breaks", v)
	}
	return nil
}

// Flags returns the sensord flags f documents, by flag name.
func (f File) Flags() map[string]Var {
	m := make(map[string]Var)
	for _, s := range f.Sections {
		for _, v := range s.Vars {
			if v.Flag != "" {
				m[v.Flag] = v
			}
		}
	}
	return m
}

// EnvName is the environment variable sensord reads for a flag:
// SENSORD_<NAME>, upper case, dashes to underscores.
func EnvName(flag string) string {
	return "SENSORD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// SSHKeySlots is how many SSH keys the file holds: SSH_PUBKEY, then
// SSH_PUBKEY_2 up to SSH_PUBKEY_<SSHKeySlots>.
const SSHKeySlots = 4

// SSHKeyName is the variable of the i-th key (from 1).
func SSHKeyName(i int) string {
	if i == 1 {
		return "SSH_PUBKEY"
	}
	return fmt.Sprintf("SSH_PUBKEY_%d", i)
}

// Edit returns conf, a settings file of f's variables that a person may
// have edited, with each variable in set made active with its value and
// each in unset commented out; every other line stays as it was (CRLF
// line ends become LF). A variable's value goes where it is active (the
// last active line: the one both readers use; earlier ones are commented
// out), else in place of its commented-out line, else at the end. Names
// f does not list and values the readers would disagree on are errors,
// and then nothing is returned.
func Edit(conf []byte, f File, set map[string]string, unset []string) ([]byte, error) {
	known := make(map[string]bool)
	for _, s := range f.Sections {
		for _, v := range s.Vars {
			known[v.Name] = true
		}
	}
	for _, k := range unset {
		if !known[k] {
			return nil, fmt.Errorf("settings: unknown variable %s", k)
		}
	}
	for k, v := range set {
		if !known[k] {
			return nil, fmt.Errorf("settings: unknown variable %s", k)
		}
		if err := checkValue(v); err != nil {
			return nil, fmt.Errorf("settings: %s: %w", k, err)
		}
	}
	text := strings.ReplaceAll(string(conf), "\r\n", "\n")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if text == "" {
		lines = nil
	}
	// name returns the variable a line assigns and whether it is active.
	name := func(l string) (string, bool) {
		t := strings.TrimLeft(l, " \t")
		active := !strings.HasPrefix(t, "#")
		k, _, ok := strings.Cut(strings.TrimPrefix(t, "#"), "=")
		if !ok || !known[k] {
			return "", false
		}
		return k, active
	}
	lastActive, firstComment := map[string]int{}, map[string]int{}
	for i, l := range lines {
		if k, active := name(l); k != "" {
			if active {
				lastActive[k] = i
			} else if _, ok := firstComment[k]; !ok {
				firstComment[k] = i
			}
		}
	}
	off := map[string]bool{}
	for _, k := range unset {
		off[k] = true
	}
	var tail []string
	for _, k := range sortedKeys(set) {
		line := k + "=" + quote(set[k])
		if i, ok := lastActive[k]; ok {
			lines[i] = line
		} else if i, ok := firstComment[k]; ok {
			lines[i] = line
			lastActive[k] = i
		} else {
			tail = append(tail, line)
		}
	}
	for i, l := range lines {
		k, active := name(l)
		if !active || k == "" {
			continue
		}
		_, setting := set[k]
		if off[k] || setting && lastActive[k] != i {
			lines[i] = "#" + strings.TrimLeft(l, " \t")
		}
	}
	lines = append(lines, tail...)
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
