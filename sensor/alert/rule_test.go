package alert

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		name, text string
		want       Rule
	}{
		{"the issue's example reads as written", "hot: temperature > 30 for 5m clear 29",
			Rule{Name: "hot", Metric: Temperature, Above: true, Threshold: 300, Clear: 290, Hold: 5 * time.Minute}},
		{"a falling rule without clear gets the deadband above", "freeze: temperature < 3",
			Rule{Name: "freeze", Metric: Temperature, Threshold: 30, Clear: 35}},
		{"a rising rule without clear gets the deadband below", "damp: humidity > 70 for 10m",
			Rule{Name: "damp", Metric: Humidity, Above: true, Threshold: 700, Clear: 680, Hold: 10 * time.Minute}},
		{"clear may come before for, and spaces are optional around >", "dew: dew_point>15.5 clear 14 for 30s",
			Rule{Name: "dew", Metric: DewPoint, Above: true, Threshold: 155, Clear: 140, Hold: 30 * time.Second}},
		{"negative thresholds and absolute humidity", "dry-air: absolute_humidity < 4.5 clear 5",
			Rule{Name: "dry-air", Metric: AbsoluteHumidity, Threshold: 45, Clear: 50}},
		{"the deadband stops at the metric's range", "wet: humidity < 1",
			Rule{Name: "wet", Metric: Humidity, Threshold: 10, Clear: 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRule(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			back, err := ParseRule(got.String())
			if err != nil || back != got {
				t.Fatalf("String %q parses back to %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestParseRuleRefuses(t *testing.T) {
	tests := []struct {
		name, text, why string
	}{
		{"no colon", "temperature > 30", "has no ':' after its name"},
		{"an empty name", ": temperature > 30", "has a name that is not"},
		{"a name with a slash, which would split its topic", "a/b: temperature > 30", "has a name that is not"},
		{"a built-in's name", "no_reading: temperature > 30", "takes the name of a built-in rule"},
		{"an unknown metric", "hot: pressure > 1000", `watches "pressure", which is not one of temperature, humidity, dew_point, absolute_humidity`},
		{"no operator", "hot: temperature = 30", `has "=" where > or < belongs`},
		{"a threshold out of range", "hot: temperature > 300", "has a threshold that is outside -40..85 degrees C"},
		{"a threshold that is no number", "hot: temperature > warm", "has a threshold that is not a number"},
		{"two decimals", "hot: temperature > 30.25", "is not a number with at most one decimal"},
		{"an exponent", "hot: temperature > 3e1", "is not a number"},
		{"a threshold that can never be crossed", "soaked: humidity > 100", "can never fire"},
		{"a threshold at the end of the range that could never clear", "any: humidity > 0", "could never clear"},
		{"a clear value on the wrong side of >", "hot: temperature > 30 clear 31", "clears at 31, which is not below its threshold 30"},
		{"a clear value equal to the threshold", "cold: temperature < 5 clear 5", "clears at 5, which is not above its threshold 5"},
		{"a clear value out of range", "damp: humidity > 70 clear -5", "has a clear value that is outside 0..100 %RH"},
		{"a hold that is no duration", "hot: temperature > 30 for ever", "has a hold time \"ever\" that is not a duration"},
		{"a negative hold", "hot: temperature > 30 for -5m", "not above zero"},
		{"a hold over a day", "hot: temperature > 30 for 25h", "above the maximum of 24h0m0s"},
		{"a dangling keyword", "hot: temperature > 30 for", `has "for" without a value`},
		{"an unknown keyword", "hot: temperature > 30 during 5m", `has "during" where for or clear belongs`},
		{"two holds", "hot: temperature > 30 for 1m for 2m", "has two hold times"},
		{"a very long rule", "hot: temperature > 30 " + strings.Repeat("x", 300), "is longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRule(tt.text)
			if err == nil {
				t.Fatalf("%q accepted", tt.text)
			}
			if !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("got %v, want ErrRule saying %q", err, tt.why)
			}
			var re *RuleError
			if !errors.As(err, &re) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line as a *RuleError", err)
			}
		})
	}
}

// FuzzParseRule: ParseRule never panics; what it accepts is a rule within
// its metric's range, with the clear value on the right side, that
// String writes back as the same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"hot: temperature > 30 for 5m clear 29", "c: humidity<5", "x: dew_point > -1.5 clear -3",
		"a: absolute_humidity < 1 for 1h", ": > ", "a:b:c", "n: temperature > 1e9", "n: temperature > ٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			if !errors.Is(err, ErrRule) {
				t.Fatalf("%q: error %v does not wrap ErrRule", s, err)
			}
			return
		}
		sp := spans[r.Metric]
		if r.Threshold < sp.min || r.Threshold > sp.max || r.Clear < sp.min || r.Clear > sp.max {
			t.Fatalf("%q: %+v is out of range", s, r)
		}
		if r.Above && r.Clear >= r.Threshold || !r.Above && r.Clear <= r.Threshold {
			t.Fatalf("%q: clear %v on the wrong side of %v", s, r.Clear, r.Threshold)
		}
		if back, err := ParseRule(r.String()); err != nil || back != r {
			t.Fatalf("%q: String %q parses back to %+v, %v", s, r.String(), back, err)
		}
	})
}
