// Package flagenv defines a program's settings once, each as a flag that
// is also read from an environment variable, with a value that checks
// itself.
//
// Every setting is one Flag: a name, a Value whose Set refuses what is not
// allowed (a choice not on the list, a duration out of bounds, a number
// that is not one), a usage line, and the environment variable derived
// from the name (-sim-temp is PREFIX_SIM_TEMP). A value from the command
// line and one from the environment go through the same Set, so they are
// refused in the same place with the same words; only the way the message
// names the value differs (-period: 2 ..., -period: SENSORD_PERIOD="2" ...).
//
// A Set is parsed in three steps the caller orders: ParseArgs (the command
// line, which wins), ApplyEnv (the environment, for flags the command line
// left alone), and Check (rules that tie several flags together). Under
// the warn policy a value from the environment that is refused is reported
// and the flag keeps its default, so a device with a typo in its settings
// file still comes up and says what is wrong; a command-line mistake is
// always an error.
//
// A Set belongs to one goroutine.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Value is a flag.Value whose Set checks the whole value before it stores
// it: a refused value leaves the old one in place. Set's error says what is
// wrong in words that follow the value in a sentence ("is not one of exit,
// warn"); the Set that calls it names the flag and the value in front.
type Value interface {
	flag.Value
	// Kind is the word -h shows after the flag's name: "duration",
	// "number", the choices; "" for a boolean.
	Kind() string
	// setDefault stores the value's Default field; the types of this
	// package are the only Values.
	setDefault()
}

// Flag is one setting.
type Flag struct {
	Name    string
	Usage   string
	Value   Value
	Default string // Value.String() when the flag was defined
	// Show is how messages print a value of this flag: a password as
	// xxxxx, a URL without its password. Nil prints the value as is.
	Show func(string) string
}

func (f *Flag) show(v string) string {
	if f.Show == nil {
		return v
	}
	return f.Show(v)
}

// origin is where a flag's value came from.
type origin int

const (
	fromDefault origin = iota
	fromArgs
	fromEnv
)

// Set is a program's settings.
type Set struct {
	prefix string
	flags  map[string]*Flag
	origin map[string]origin
	raw    map[string]string // the text a flag was set from, by name
	args   []string          // what ParseArgs left after the flags
}

// New returns an empty Set whose environment variables start with prefix,
// e.g. "SENSORD_".
func New(prefix string) *Set {
	return &Set{prefix: prefix, flags: map[string]*Flag{}, origin: map[string]origin{}, raw: map[string]string{}}
}

// Var defines a flag and stores v's Default. It panics on a name defined
// twice or a default that v's own checks refuse, as package flag does on a
// redefinition: both are programming mistakes.
func (s *Set) Var(v Value, name, usage string) *Flag {
	if _, dup := s.flags[name]; dup {
		panic("flagenv: flag redefined: " + name)
	}
	v.setDefault()
	if err := v.Set(v.String()); err != nil {
		panic("flagenv: the default of -" + name + " " + err.Error())
	}
	f := &Flag{Name: name, Usage: usage, Value: v, Default: v.String()}
	s.flags[name] = f
	return f
}

// Lookup returns the flag called name, or nil.
func (s *Set) Lookup(name string) *Flag { return s.flags[name] }

// Flags returns every flag, sorted by name.
func (s *Set) Flags() []*Flag {
	out := make([]*Flag, 0, len(s.flags))
	for _, f := range s.flags {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *Flag) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// EnvName is the environment variable of flag name: the prefix, then the
// name in upper case with dashes as underscores.
func (s *Set) EnvName(name string) string {
	return s.prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Error is a settings mistake: it names the flag to blame ("" when no
// single flag is), the value as given, and what is allowed.
type Error struct {
	Flag string // without the dash
	Msg  string
}

func (e *Error) Error() string {
	if e.Flag == "" {
		return e.Msg
	}
	return "-" + e.Flag + ": " + e.Msg
}

// Blame is what a Check rule returns to refuse flag's value; the text
// follows the value in the message, as a Value's Set error does:
// Blame("period", "is below the %s minimum of %s", kind, min).
func Blame(flag, format string, args ...any) error {
	return &blame{flag: flag, text: fmt.Sprintf(format, args...)}
}

type blame struct{ flag, text string }

func (b *blame) Error() string { return "-" + b.flag + ": " + b.text }

// ParseArgs sets flags from the command line, with package flag's syntax
// (-name value, -name=value, a bare -name for a boolean, -- to end). It
// returns flag.ErrHelp for -h and -help, and an *Error otherwise.
func (s *Set) ParseArgs(args []string) error {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var refused *Error
	for _, f := range s.flags {
		fs.Var(&fromCommandLine{s: s, f: f, refused: &refused}, f.Name, f.Usage)
	}
	err := fs.Parse(args)
	switch {
	case err == nil:
		s.args = fs.Args()
		return nil
	case errors.Is(err, flag.ErrHelp):
		return flag.ErrHelp
	case refused != nil:
		return refused
	}
	return &Error{Msg: err.Error()}
}

// Args returns the command line's arguments after the flags.
func (s *Set) Args() []string { return s.args }

// fromCommandLine hands package flag's calls to a Flag's Value and keeps
// the first refusal with the value's own words, which package flag would
// bury in its "invalid value ... for flag" wording.
type fromCommandLine struct {
	s       *Set
	f       *Flag
	refused **Error
}

func (c *fromCommandLine) String() string {
	if c.f == nil {
		return ""
	}
	return c.f.Value.String()
}

func (c *fromCommandLine) Set(v string) error {
	if err := c.f.Value.Set(v); err != nil {
		*c.refused = &Error{Flag: c.f.Name, Msg: quoteIfNeeded(c.f.show(v)) + " " + err.Error()}
		return err
	}
	c.s.origin[c.f.Name] = fromArgs
	c.s.raw[c.f.Name] = v
	return nil
}

func (c *fromCommandLine) IsBoolFlag() bool {
	b, ok := c.f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// ApplyEnv sets each flag the command line did not set from its
// environment variable, as lookup (os.LookupEnv) finds it; with names,
// only those flags (an undefined name panics: a programming mistake). A refused value is an error, or under warn a warning,
// and the flag keeps its default. A flag ApplyEnv has set once is not set
// again by a later call.
func (s *Set) ApplyEnv(lookup func(string) (string, bool), warn bool, names ...string) ([]string, error) {
	flags := s.Flags()
	if len(names) > 0 {
		flags = flags[:0]
		for _, n := range names {
			f := s.flags[n]
			if f == nil {
				panic("flagenv: ApplyEnv of an undefined flag: " + n)
			}
			flags = append(flags, f)
		}
	}
	var warnings []string
	for _, f := range flags {
		if s.origin[f.Name] != fromDefault {
			continue
		}
		v, ok := lookup(s.EnvName(f.Name))
		if !ok {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			e := &Error{Flag: f.Name, Msg: s.EnvName(f.Name) + "=" + strconv.Quote(f.show(v)) + " " + err.Error()}
			if !warn {
				return nil, e
			}
			warnings = append(warnings, s.defaulted(f, e))
			continue
		}
		s.origin[f.Name] = fromEnv
		s.raw[f.Name] = v
	}
	return warnings, nil
}

// defaulted is the warning for e, whose flag f keeps its default.
func (s *Set) defaulted(f *Flag, e *Error) string {
	return e.Error() + "; using the default " + strconv.Quote(f.show(f.Default))
}

// Check runs rules that tie flags together, in order, once every flag has
// its value. A rule returns nil, an error made by Blame, or any other error
// (returned as is). A blamed flag whose value came from the environment is,
// under warn, reset to its default with a warning, and the rule runs once
// more; otherwise, or if the rule fails again, the blame is the error.
//
// A reset must not break a rule before it: the caller orders the rules so
// that no rule reads a flag that a later one may blame.
func (s *Set) Check(warn bool, rules ...func() error) ([]string, error) {
	var warnings []string
	for _, rule := range rules {
		err := rule()
		if f, e := s.blamed(err); f != nil && warn && s.origin[f.Name] == fromEnv {
			f.Value.setDefault()
			s.origin[f.Name] = fromDefault
			warnings = append(warnings, s.defaulted(f, e))
			err = rule()
		}
		if err == nil {
			continue
		}
		if _, e := s.blamed(err); e != nil {
			return nil, e
		}
		return nil, err
	}
	return warnings, nil
}

// blamed returns the flag err blames and the message that names its value,
// or nils when err is no blame.
func (s *Set) blamed(err error) (*Flag, *Error) {
	var b *blame
	if !errors.As(err, &b) {
		return nil, nil
	}
	f := s.flags[b.flag]
	if f == nil { // a rule that blames no flag of s: said as it is
		return nil, &Error{Flag: b.flag, Msg: b.text}
	}
	return f, &Error{Flag: b.flag, Msg: s.subject(f) + " " + b.text}
}

// subject is how a message names f's value: as given on the command line,
// as NAME="value" from the environment, or as the default.
func (s *Set) subject(f *Flag) string {
	switch s.origin[f.Name] {
	case fromArgs:
		return quoteIfNeeded(f.show(s.raw[f.Name]))
	case fromEnv:
		return s.EnvName(f.Name) + "=" + strconv.Quote(f.show(s.raw[f.Name]))
	}
	return "the default " + quoteIfNeeded(f.show(f.Default))
}

// quoteIfNeeded quotes v when it would not read as one word: empty, with
// spaces, quotes or invisible characters.
func quoteIfNeeded(v string) string {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) || r == '"' }) {
		return strconv.Quote(v)
	}
	return v
}

// PrintUsage writes every flag, sorted, in package flag's layout (which
// scripts read), with each flag's environment variable beside its name:
//
//	-period duration  (SENSORD_PERIOD)
//	  	time between readings (default 2s)
//
// The default is left out where it is the type's zero, as flag does.
func (s *Set) PrintUsage(w io.Writer) {
	var b strings.Builder
	for _, f := range s.Flags() {
		b.WriteString("  -" + f.Name)
		if k := f.Value.Kind(); k != "" {
			b.WriteString(" " + k)
		}
		b.WriteString("  (" + s.EnvName(f.Name) + ")\n    \t")
		b.WriteString(strings.ReplaceAll(f.Usage, "\n", "\n    \t"))
		switch {
		case isZero(f.Default):
		case f.Value.Kind() == kindString:
			fmt.Fprintf(&b, " (default %q)", f.Default)
		default:
			fmt.Fprintf(&b, " (default %s)", f.Default)
		}
		b.WriteString("\n")
	}
	io.WriteString(w, b.String())
}

func isZero(def string) bool {
	switch def {
	case "", "0", "0s", "false":
		return true
	}
	return false
}
