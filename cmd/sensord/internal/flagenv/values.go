package flagenv

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// kindString is Text's Kind; PrintUsage quotes the defaults of this kind.
const kindString = "string"

// Text is a string, checked by Check when there is one. Check's error
// follows the value in a sentence, as every Value's does ("is not
// host:port").
type Text struct {
	P       *string
	Default string
	Check   func(string) error
}

func (t Text) setDefault() { *t.P = t.Default }

func (t Text) Kind() string { return kindString }

func (t Text) String() string {
	if t.P == nil {
		return ""
	}
	return *t.P
}

func (t Text) Set(v string) error {
	if t.Check != nil {
		if err := t.Check(v); err != nil {
			return err
		}
	}
	*t.P = v
	return nil
}

// Bool is true or false, in strconv.ParseBool's spellings (1, t, TRUE...);
// on the command line a bare -name is true.
type Bool struct {
	P       *bool
	Default bool
}

func (b Bool) setDefault() { *b.P = b.Default }

func (b Bool) Kind() string     { return "" }
func (b Bool) IsBoolFlag() bool { return true }

func (b Bool) String() string {
	if b.P == nil {
		return "false"
	}
	return strconv.FormatBool(*b.P)
}

func (b Bool) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("is not true or false")
	}
	*b.P = x
	return nil
}

// Choice is one of a fixed list of words, matched without regard to case
// (DHT22 is dht22) and stored as the list spells it.
type Choice struct {
	P       *string
	Default string
	Choices []string
}

func (c Choice) setDefault() { *c.P = c.Default }

func (c Choice) Kind() string { return strings.Join(c.Choices, "|") }

func (c Choice) String() string {
	if c.P == nil {
		return ""
	}
	return *c.P
}

func (c Choice) Set(v string) error {
	for _, w := range c.Choices {
		if strings.EqualFold(v, w) {
			*c.P = w
			return nil
		}
	}
	return fmt.Errorf("is not one of %s", strings.Join(c.Choices, ", "))
}

// NoMaximum is a Duration's Max when it has none.
const NoMaximum = time.Duration(math.MaxInt64)

// durationExamples is what a value that is no duration is shown.
const durationExamples = "(a number and a unit, such as 2s, 500ms, 1m30s or 168h)"

// Duration is a time.Duration within [Min, Max], in time.ParseDuration's
// syntax.
type Duration struct {
	P        *time.Duration
	Default  time.Duration
	Min, Max time.Duration
}

func (d Duration) setDefault() { *d.P = d.Default }

func (d Duration) Kind() string { return "duration" }

func (d Duration) String() string {
	if d.P == nil {
		return "0s"
	}
	return d.P.String()
}

func (d Duration) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("is not a duration " + durationExamples)
	}
	if x >= d.Min && x <= d.Max {
		*d.P = x
		return nil
	}
	switch {
	case d.Min == 0 && x < 0:
		return errors.New("is negative")
	case d.Max == NoMaximum:
		return fmt.Errorf("is below the minimum of %s", ShortDuration(d.Min))
	case d.Min == 0:
		return fmt.Errorf("is above the maximum of %s", ShortDuration(d.Max))
	}
	return fmt.Errorf("is outside %s..%s", ShortDuration(d.Min), ShortDuration(d.Max))
}

// ShortDuration is d as a person writes it: 2h, not 2h0m0s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Float is a number within [Min, Max]; Unit, if any, follows the bounds
// in a message ("is outside -20..20 degrees C").
type Float struct {
	P        *float64
	Default  float64
	Min, Max float64
	Unit     string
}

func (f Float) setDefault() { *f.P = f.Default }

func (f Float) Kind() string { return "number" }

func (f Float) String() string {
	if f.P == nil {
		return "0"
	}
	return strconv.FormatFloat(*f.P, 'g', -1, 64)
}

func (f Float) Set(v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(x) {
		return errors.New("is not a number")
	}
	if x < f.Min || x > f.Max {
		return fmt.Errorf("is outside %s..%s%s", fmtFloat(f.Min), fmtFloat(f.Max), unit(f.Unit))
	}
	*f.P = x
	return nil
}

// Int is a whole number within [Min, Max].
type Int struct {
	P        *int
	Default  int
	Min, Max int
}

func (f Int) setDefault() { *f.P = f.Default }

func (f Int) Kind() string { return "number" }

func (f Int) String() string {
	if f.P == nil {
		return "0"
	}
	return strconv.Itoa(*f.P)
}

func (f Int) Set(v string) error {
	x, err := strconv.Atoi(v)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return errors.New("is not a whole number")
	}
	if err != nil || x < f.Min || x > f.Max {
		return fmt.Errorf("is outside %d..%d", f.Min, f.Max)
	}
	*f.P = x
	return nil
}

func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func unit(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

// Tenths is a decimal number kept in tenths (21.4 is 214), within [Min,
// Max] tenths: sensor values and their corrections, exact, with no
// float64 in between. A second decimal rounds half away from zero.
type Tenths[T ~int32] struct {
	P        *T
	Default  T
	Min, Max T
	Unit     string
}

func (t Tenths[T]) setDefault() { *t.P = t.Default }

func (t Tenths[T]) Kind() string { return "number" }

func (t Tenths[T]) String() string {
	if t.P == nil {
		return "0"
	}
	return FormatTenths(*t.P)
}

func (t Tenths[T]) Set(v string) error {
	x, err := parseTenths(v, t.Min, t.Max, t.Unit)
	if err != nil {
		return err
	}
	*t.P = x
	return nil
}

// OptionalTenths is Tenths that may be unset: "" stores nil, which is
// also its default.
type OptionalTenths[T ~int32] struct {
	P        **T
	Min, Max T
	Unit     string
}

func (t OptionalTenths[T]) setDefault() { *t.P = nil }

func (t OptionalTenths[T]) Kind() string { return "number" }

func (t OptionalTenths[T]) String() string {
	if t.P == nil || *t.P == nil {
		return ""
	}
	return FormatTenths(**t.P)
}

func (t OptionalTenths[T]) Set(v string) error {
	if v == "" {
		*t.P = nil
		return nil
	}
	x, err := parseTenths(v, t.Min, t.Max, t.Unit)
	if err != nil {
		return err
	}
	*t.P = &x
	return nil
}

// FormatTenths is t tenths as a decimal: 214 is 21.4, -5 is -0.5, 200 is 20.
func FormatTenths[T ~int32](t T) string {
	n := int64(t)
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	if n%10 == 0 {
		return sign + strconv.FormatInt(n/10, 10)
	}
	return sign + strconv.FormatInt(n/10, 10) + "." + strconv.FormatInt(n%10, 10)
}

// maxTenthsDigits bounds the whole part, so it cannot overflow int32
// tenths before the range check sees it.
const maxTenthsDigits = 8

// parseTenths reads [+-]digits[.digits] (no exponent, no NaN or Inf: a
// reading is never written that way) within [lo, hi] tenths.
func parseTenths[T ~int32](v string, lo, hi T, u string) (T, error) {
	notNumber := fmt.Errorf("is not a number within %s..%s%s", FormatTenths(lo), FormatTenths(hi), unit(u))
	s := v
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" && (!dot || frac == "") || !digits(whole) || !digits(frac) || len(whole) > maxTenthsDigits {
		return 0, notNumber
	}
	var n int64
	for _, c := range whole {
		n = n*10 + int64(c-'0')
	}
	n *= 10
	if len(frac) > 0 {
		n += int64(frac[0] - '0')
	}
	if len(frac) > 1 && frac[1] >= '5' {
		n++
	}
	if neg {
		n = -n
	}
	if n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("is outside %s..%s%s", FormatTenths(lo), FormatTenths(hi), unit(u))
	}
	return T(n), nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// List is a setting given several times: each -name on the command line
// adds to it, and its environment variable holds several values separated
// by Sep (SENSORD_ALERT="hot: ...; cold: ..."). Parse reads one value; a
// value Parse refuses is named by its position, and nothing of that Set
// is stored ("in part 2, ..."). Format writes a value back as Parse reads it.
type List[T any] struct {
	P      *[]T
	Sep    string
	Parse  func(string) (T, error)
	Format func(T) string
}

func (l List[T]) setDefault() { *l.P = nil }

func (l List[T]) Kind() string { return "value" }

func (l List[T]) String() string {
	if l.P == nil {
		return ""
	}
	parts := make([]string, len(*l.P))
	for i, v := range *l.P {
		parts[i] = l.Format(v)
	}
	return strings.Join(parts, l.Sep+" ")
}

func (l List[T]) Set(v string) error {
	var add []T
	items := strings.Split(v, l.Sep)
	for i, s := range items {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		x, err := l.Parse(s)
		if err != nil {
			if len(items) > 1 {
				return fmt.Errorf("in part %d, %q %w", i+1, s, err)
			}
			return err
		}
		add = append(add, x)
	}
	*l.P = append(*l.P, add...)
	return nil
}
