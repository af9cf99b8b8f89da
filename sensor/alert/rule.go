package alert

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sensord/sensor"
)

// Metric is what a rule watches.
type Metric string

// The metrics a rule may name, and the one the built-in rules measure.
const (
	Temperature      Metric = "temperature"       // degrees C
	Humidity         Metric = "humidity"          // %RH
	DewPoint         Metric = "dew_point"         // degrees C, sensor.DewPoint
	AbsoluteHumidity Metric = "absolute_humidity" // g/m³, sensor.AbsoluteHumidity
	// ReadingAge is the built-in rules' metric: seconds since the last
	// good reading.
	ReadingAge Metric = "reading_age"
)

// Metrics lists the metrics a rule may name, in the order help shows them.
func Metrics() []Metric { return []Metric{Temperature, Humidity, DewPoint, AbsoluteHumidity} }

// span is a metric's allowed thresholds, in tenths, and the hysteresis a
// rule without a clear value gets.
type span struct {
	min, max sensor.Deci
	unit     string
	// deadband is the default distance of the clear value from the
	// threshold: about the sensor's noise and accuracy, so that a value
	// wandering around the threshold does not raise and clear in turn.
	deadband sensor.Deci
}

// spans bound every metric by what the supported chips can report
// (DHT22 -40..80 C, BME280 -40..85 C; 0..100 %RH), and what follows from
// that for the derived values: a threshold outside can never be crossed
// and is more likely a typo than a wish.
var spans = map[Metric]span{
	Temperature:      {min: -400, max: 850, unit: "degrees C", deadband: 5},
	Humidity:         {min: 0, max: 1000, unit: "%RH", deadband: 20},
	DewPoint:         {min: -800, max: 850, unit: "degrees C", deadband: 5},
	AbsoluteHumidity: {min: 0, max: 3600, unit: "g/m³", deadband: 5},
}

// Unit is the unit of m's values as words ("degrees C", "%RH", "g/m³",
// "seconds").
func (m Metric) Unit() string {
	if m == ReadingAge {
		return "seconds"
	}
	return spans[m].unit
}

// Limits of a rule's text.
const (
	// MaxNameLen bounds a rule's name: it is an MQTT topic level, part of
	// a Home Assistant unique_id and shown on the dashboard.
	MaxNameLen = 32
	// MaxHold bounds "for": an alert a day late warns of nothing, and a
	// longer value is more likely a typo (5h for 5m).
	MaxHold = 24 * time.Hour
	// MaxRuleLen bounds a rule's text, far above any real rule.
	MaxRuleLen = 256
	// maxWholeDigits bounds a number's whole part before it is range
	// checked, so it cannot overflow.
	maxWholeDigits = 6
)

// nameRE is what a rule's name may hold: safe in a topic, an id and a URL.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ErrRule is what every refused rule wraps.
var ErrRule = errors.New("alert: bad rule")

// RuleError says why a rule's text was refused. Why follows the rule in a
// sentence ("has no ':' after its name").
type RuleError struct {
	Text string
	Why  string
}

func (e *RuleError) Error() string { return fmt.Sprintf("alert: rule %q %s", e.Text, e.Why) }

func (e *RuleError) Unwrap() error { return ErrRule }

// Rule raises an alert when its metric is past Threshold (above it when
// Above, else below) on every reading for at least Hold, and clears it
// when the metric is back at or past Clear, which lies on the other side
// of Threshold (hysteresis), for as long.
type Rule struct {
	Name      string
	Metric    Metric
	Above     bool
	Threshold sensor.Deci // tenths of the metric's unit
	Clear     sensor.Deci // tenths; strictly on the other side of Threshold
	Hold      time.Duration
}

// Syntax is a rule's grammar, for messages and help.
const Syntax = "NAME: METRIC > VALUE [for DURATION] [clear VALUE] (or <)"

// ParseRule reads NAME: METRIC > VALUE [for DURATION] [clear VALUE], with
// < for a rule on falling values, for example
// "hot: temperature > 30 for 5m clear 29". Values are decimals with at
// most one decimal place, in the metric's unit. Without clear, the clear
// value lies the metric's deadband away from the threshold. Errors are
// *RuleError, wrapping ErrRule.
func ParseRule(text string) (Rule, error) {
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, &RuleError{Text: shorten(text), Why: fmt.Sprintf(format, args...)}
	}
	if len(text) > MaxRuleLen {
		return bad("is longer than %d characters", MaxRuleLen)
	}
	name, body, ok := strings.Cut(text, ":")
	if !ok {
		return bad("has no ':' after its name (%s)", Syntax)
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > MaxNameLen || !nameRE.MatchString(name) {
		return bad("has a name that is not 1 to %d letters, digits, - or _", MaxNameLen)
	}
	if IsBuiltin(name) {
		return bad("takes the name of a built-in rule (%s, %s)", SensorFailing, NoReading)
	}
	body = strings.NewReplacer(">", " > ", "<", " < ").Replace(body)
	f := strings.Fields(body)
	if len(f) < 3 {
		return bad("is not %s", Syntax)
	}
	r := Rule{Name: name, Metric: Metric(f[0])}
	sp, ok := spans[r.Metric]
	if !ok {
		return bad("watches %q, which is not one of %s", f[0], metricList())
	}
	switch f[1] {
	case ">":
		r.Above = true
	case "<":
	default:
		return bad("has %q where > or < belongs", f[1])
	}
	var err error
	if r.Threshold, err = parseValue(f[2], sp); err != nil {
		return bad("has a threshold that %v", err)
	}
	if r.Above && r.Threshold >= sp.max || !r.Above && r.Threshold <= sp.min {
		return bad("can never fire: %s is never %s %s %s", r.Metric, r.op(), deciText(r.Threshold), sp.unit)
	}
	if r.Above && r.Threshold <= sp.min || !r.Above && r.Threshold >= sp.max {
		return bad("could never clear: %s is never back past %s %s", r.Metric, deciText(r.Threshold), sp.unit)
	}
	hasClear, hasHold := false, false
	for rest := f[3:]; len(rest) > 0; rest = rest[2:] {
		if len(rest) < 2 {
			return bad("has %q without a value after it (%s)", rest[0], Syntax)
		}
		switch rest[0] {
		case "for":
			if hasHold {
				return bad("has two hold times")
			}
			hasHold = true
			d, err := time.ParseDuration(rest[1])
			switch {
			case err != nil:
				return bad("has a hold time %q that is not a duration such as 30s, 5m or 1h", rest[1])
			case d <= 0:
				return bad("has a hold time that is not above zero")
			case d > MaxHold:
				return bad("has a hold time above the maximum of %s", MaxHold)
			}
			r.Hold = d
		case "clear":
			if hasClear {
				return bad("has two clear values")
			}
			hasClear = true
			if r.Clear, err = parseValue(rest[1], sp); err != nil {
				return bad("has a clear value that %v", err)
			}
		default:
			return bad("has %q where for or clear belongs (%s)", rest[0], Syntax)
		}
	}
	switch {
	case !hasClear && r.Above:
		r.Clear = max(r.Threshold-sp.deadband, sp.min)
	case !hasClear:
		r.Clear = min(r.Threshold+sp.deadband, sp.max)
	case r.Above && r.Clear >= r.Threshold:
		return bad("clears at %s, which is not below its threshold %s: a rule for > clears once the value is back below it", deciText(r.Clear), deciText(r.Threshold))
	case !r.Above && r.Clear <= r.Threshold:
		return bad("clears at %s, which is not above its threshold %s: a rule for < clears once the value is back above it", deciText(r.Clear), deciText(r.Threshold))
	}
	return r, nil
}

// shorten keeps a refused rule's message one readable line.
func shorten(text string) string {
	if len(text) > 60 {
		return text[:60] + "..."
	}
	return text
}

func metricList() string {
	var s []string
	for _, m := range Metrics() {
		s = append(s, string(m))
	}
	return strings.Join(s, ", ")
}

// parseValue reads [+-]digits[.digit] within sp.
func parseValue(v string, sp span) (sensor.Deci, error) {
	s := v
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || dot && len(frac) != 1 || !digits(whole) || !digits(frac) || len(whole) > maxWholeDigits {
		return 0, fmt.Errorf("is not a number with at most one decimal: %q", v)
	}
	n, _ := strconv.Atoi(whole) // digits only, at most maxWholeDigits
	n *= 10
	if frac != "" {
		n += int(frac[0] - '0')
	}
	if neg {
		n = -n
	}
	if d := sensor.Deci(n); d >= sp.min && d <= sp.max {
		return d, nil
	}
	return 0, fmt.Errorf("is outside %s..%s %s", deciText(sp.min), deciText(sp.max), sp.unit)
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (r Rule) op() string {
	if r.Above {
		return ">"
	}
	return "<"
}

// String is the rule as ParseRule reads it back, clear and hold spelled
// out: "hot: temperature > 30 for 5m clear 29".
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s %s", r.Name, r.Metric, r.op(), deciText(r.Threshold))
	if r.Hold > 0 {
		b.WriteString(" for " + r.Hold.String())
	}
	b.WriteString(" clear " + deciText(r.Clear))
	return b.String()
}

// deciText is d as JSON writes it (30, not 30.0).
func deciText(d sensor.Deci) string { return string(d.AppendJSON(nil)) }

// fired reports whether v is past the threshold.
func (r Rule) fired(v sensor.Deci) bool {
	if r.Above {
		return v > r.Threshold
	}
	return v < r.Threshold
}

// cleared reports whether v is back at or past the clear value.
func (r Rule) cleared(v sensor.Deci) bool {
	if r.Above {
		return v <= r.Clear
	}
	return v >= r.Clear
}

// value is r's metric of reading rd; ok is false when the reading has
// none (no dew point at 0 %RH).
func (r Rule) value(rd sensor.Derived) (v sensor.Deci, ok bool) {
	switch r.Metric {
	case Temperature:
		return rd.Temperature, true
	case Humidity:
		return rd.Humidity, true
	case DewPoint:
		return rd.DewPoint, rd.HasDewPoint
	case AbsoluteHumidity:
		return rd.AbsoluteHumidity, true
	}
	return 0, false
}
