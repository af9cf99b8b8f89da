package flagenv

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

type deci int32

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// vals holds one variable of each type, for the table below.
type vals struct {
	text   string
	on     bool
	choice string
	dur    time.Duration
	rate   float64
	tenth  deci
	opt    *deci
}

func (v *vals) set() *Set {
	s := New("T_")
	s.Var(Text{P: &v.text, Default: "a", Check: func(x string) error {
		if x == "" {
			return errors.New("is empty")
		}
		return nil
	}}, "text", "a non-empty text")
	s.Var(Bool{P: &v.on}, "on", "a switch")
	s.Var(Choice{P: &v.choice, Default: "server", Choices: []string{"server", "client", "both"}}, "mode", "a choice")
	s.Var(Duration{P: &v.dur, Default: time.Minute, Min: time.Second, Max: time.Hour}, "every", "a bounded duration")
	s.Var(Float{P: &v.rate, Max: 1}, "rate", "a probability")
	s.Var(Tenths[deci]{P: &v.tenth, Min: -200, Max: 200, Unit: "degrees C"}, "offset", "tenths")
	s.Var(OptionalTenths[deci]{P: &v.opt, Min: -400, Max: 800, Unit: "degrees C"}, "temp", "optional tenths")
	return s
}

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		name, flag, in string
		want           string // the value's String after Set, for a good value
		problem        string // Set's error, for a bad one
	}{
		{"a text its check accepts", "text", "hello", "hello", ""},
		{"a text its check refuses", "text", "", "", "is empty"},
		{"a bare true", "on", "true", "true", ""},
		{"strconv's short spellings", "on", "0", "false", ""},
		{"a word that is no boolean", "on", "yes", "", "is not true or false"},
		{"a choice", "mode", "client", "client", ""},
		{"a choice in another case, stored as listed", "mode", "Both", "both", ""},
		{"a word not on the list", "mode", "relay", "", "is not one of server, client, both"},
		{"an empty choice", "mode", "", "", "is not one of server, client, both"},
		{"a duration at its minimum", "every", "1s", "1s", ""},
		{"a duration at its maximum", "every", "60m", "1h0m0s", ""},
		{"a duration below its minimum", "every", "999ms", "", "is outside 1s..1h"},
		{"a duration above its maximum", "every", "1h0m1s", "", "is outside 1s..1h"},
		{"a number without a unit", "every", "2", "", "is not a duration (a number and a unit, such as 2s, 500ms, 1m30s or 168h)"},
		{"words", "every", "2 seconds", "", "is not a duration (a number and a unit, such as 2s, 500ms, 1m30s or 168h)"},
		{"a probability at one", "rate", "1", "1", ""},
		{"a probability in exponent form", "rate", "5e-1", "0.5", ""},
		{"a probability above one", "rate", "1.01", "", "is outside 0..1"},
		{"a negative probability", "rate", "-0.01", "", "is outside 0..1"},
		{"NaN", "rate", "NaN", "", "is not a number"},
		{"infinity", "rate", "+Inf", "", "is outside 0..1"},
		{"a number beyond float64", "rate", "1e999", "", "is outside 0..1"},
		{"no number", "rate", "lots", "", "is not a number"},
		{"tenths", "offset", "-0.5", "-0.5", ""},
		{"whole tenths print without a decimal", "offset", "+3.0", "3", ""},
		{"a second decimal rounds half away from zero", "offset", "-1.25", "-1.3", ""},
		{"a second decimal below half rounds down", "offset", "1.249", "1.2", ""},
		{"tenths at their bound", "offset", "20", "20", ""},
		{"tenths just past their bound", "offset", "20.05", "", "is outside -20..20 degrees C"},
		{"a leading dot", "offset", ".5", "0.5", ""},
		{"tenths in exponent form", "offset", "1e1", "", "is not a number within -20..20 degrees C"},
		{"tenths as NaN", "offset", "NaN", "", "is not a number within -20..20 degrees C"},
		{"tenths as a lone dot", "offset", ".", "", "is not a number within -20..20 degrees C"},
		{"tenths too long to hold", "offset", "123456789012", "", "is not a number within -20..20 degrees C"},
		{"optional tenths", "temp", "-10.1", "-10.1", ""},
		{"optional tenths cleared", "temp", "", "", ""},
		{"optional tenths out of range", "temp", "80.1", "", "is outside -40..80 degrees C"},
		{"optional tenths with a space", "temp", " 21", "", "is not a number within -40..80 degrees C"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v vals
			s := v.set()
			f := s.Lookup(tc.flag)
			before := f.Value.String()
			err := f.Value.Set(tc.in)
			if tc.problem != "" {
				if err == nil || err.Error() != tc.problem {
					t.Fatalf("Set(%q) = %v, want %q", tc.in, err, tc.problem)
				}
				if got := f.Value.String(); got != before {
					t.Errorf("a refused Set changed the value from %q to %q", before, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set(%q) = %v", tc.in, err)
			}
			if got := f.Value.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if err := f.Value.Set(f.Value.String()); err != nil || f.Value.String() != tc.want {
				t.Errorf("String() does not set back to itself: %v", err)
			}
		})
	}
}

func TestDurationBoundsAreSaidAsTheyAre(t *testing.T) {
	var d time.Duration
	for _, tc := range []struct {
		v    Duration
		in   string
		want string
	}{
		{Duration{P: &d, Max: NoMaximum}, "-1s", "is negative"},
		{Duration{P: &d, Max: time.Hour}, "-1s", "is negative"},
		{Duration{P: &d, Max: time.Hour}, "2h", "is above the maximum of 1h"},
		{Duration{P: &d, Min: 2 * time.Hour, Max: NoMaximum}, "90m", "is below the minimum of 2h"},
		{Duration{P: &d, Min: time.Second, Max: 20 * time.Second}, "1h", "is outside 1s..20s"},
	} {
		if err := tc.v.Set(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("%+v Set(%q) = %v, want %q", tc.v, tc.in, err, tc.want)
		}
	}
	for d, want := range map[time.Duration]string{2 * time.Hour: "2h", 90 * time.Minute: "1h30m", time.Minute: "1m", 10 * time.Second: "10s", time.Hour + time.Second: "1h0m1s", 20 * time.Microsecond: "20µs"} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// The same bad value, from the command line and from the environment, is
// refused with the same words; only the way it is named differs.
func TestCommandLineAndEnvironmentRefuseAlike(t *testing.T) {
	for _, tc := range []struct{ flag, in, shown, problem string }{
		{"mode", "relay", "relay", "is not one of server, client, both"},
		{"every", "2", "2", "is not a duration (a number and a unit, such as 2s, 500ms, 1m30s or 168h)"},
		{"every", "2 s", `"2 s"`, "is not a duration (a number and a unit, such as 2s, 500ms, 1m30s or 168h)"},
		{"rate", "2", "2", "is outside 0..1"},
		{"on", "yes", "yes", "is not true or false"},
		{"text", "", `""`, "is empty"},
		{"temp", "hot", "hot", "is not a number within -40..80 degrees C"},
	} {
		t.Run(tc.flag+"="+tc.in, func(t *testing.T) {
			var v vals
			s := v.set()
			err := s.ParseArgs([]string{"-" + tc.flag + "=" + tc.in})
			if want := "-" + tc.flag + ": " + tc.shown + " " + tc.problem; err == nil || err.Error() != want {
				t.Errorf("command line: %v\nwant %s", err, want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Flag != tc.flag {
				t.Errorf("command line: %#v does not name -%s", err, tc.flag)
			}

			name := s.EnvName(tc.flag)
			_, err = v.set().ApplyEnv(env(name, tc.in), false)
			envMsg := "-" + tc.flag + ": " + name + "=\"" + tc.in + "\" " + tc.problem
			if err == nil || err.Error() != envMsg {
				t.Errorf("environment: %v\nwant %s", err, envMsg)
			}

			var w vals
			ws := w.set()
			warnings, err := ws.ApplyEnv(env(name, tc.in), true)
			def := ws.Lookup(tc.flag).Default
			if err != nil || len(warnings) != 1 || warnings[0] != envMsg+`; using the default "`+def+`"` {
				t.Errorf("warn: %v %q", err, warnings)
			}
			if got := ws.Lookup(tc.flag).Value.String(); got != def {
				t.Errorf("warn: -%s is %q, want its default %q", tc.flag, got, def)
			}
		})
	}
}

func TestTheCommandLineWinsOverTheEnvironment(t *testing.T) {
	var v vals
	s := v.set()
	if err := s.ParseArgs([]string{"-mode", "client", "-on"}); err != nil {
		t.Fatal(err)
	}
	// A bad environment value for a flag the command line set is not read.
	if _, err := s.ApplyEnv(env("T_MODE", "relay", "T_ON", "false", "T_EVERY", "5s"), false); err != nil {
		t.Fatal(err)
	}
	if v.choice != "client" || !v.on || v.dur != 5*time.Second {
		t.Errorf("%+v", v)
	}
}

func TestApplyEnvByNameSetsOnlyThose(t *testing.T) {
	var v vals
	s := v.set()
	look := env("T_MODE", "both", "T_EVERY", "5s")
	if _, err := s.ApplyEnv(look, false, "mode"); err != nil || v.choice != "both" || v.dur != time.Minute {
		t.Fatalf("%v %+v", err, v)
	}
	if _, err := s.ApplyEnv(look, false); err != nil || v.dur != 5*time.Second {
		t.Fatalf("%v %+v", err, v)
	}
}

func TestParseArgsErrors(t *testing.T) {
	var v vals
	s := v.set()
	if err := s.ParseArgs([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	err := s.ParseArgs([]string{"-colour", "red"})
	var e *Error
	if !errors.As(err, &e) || e.Flag != "" || !strings.Contains(e.Msg, "-colour") {
		t.Errorf("unknown flag: %#v", err)
	}
	if err := s.ParseArgs([]string{"-every"}); err == nil || !strings.Contains(err.Error(), "needs an argument") {
		t.Errorf("missing value: %v", err)
	}
	if err := s.ParseArgs([]string{"-on", "rest"}); err != nil || len(s.Args()) != 1 || s.Args()[0] != "rest" {
		t.Errorf("a bare boolean, then an argument: %v %q", err, s.Args())
	}
}

// A rule that blames a value from the environment under warn resets it and
// runs again; a value from the command line or a default is the error.
func TestCheck(t *testing.T) {
	rule := func(v *vals) func() error {
		return func() error {
			if v.choice != "server" && v.text == "a" {
				return Blame("mode", "needs -text")
			}
			return nil
		}
	}
	t.Run("warn resets a value from the environment and keeps the rest", func(t *testing.T) {
		var v vals
		s := v.set()
		s.ApplyEnv(env("T_MODE", "client", "T_EVERY", "5s"), true)
		w, err := s.Check(true, rule(&v))
		if err != nil || len(w) != 1 || w[0] != `-mode: T_MODE="client" needs -text; using the default "server"` || v.choice != "server" || v.dur != 5*time.Second {
			t.Errorf("%v %q %+v", err, w, v)
		}
	})
	t.Run("exit fails naming the variable", func(t *testing.T) {
		var v vals
		s := v.set()
		s.ApplyEnv(env("T_MODE", "client"), false)
		if _, err := s.Check(false, rule(&v)); err == nil || err.Error() != `-mode: T_MODE="client" needs -text` {
			t.Errorf("%v", err)
		}
	})
	t.Run("a command-line value fails under warn", func(t *testing.T) {
		var v vals
		s := v.set()
		s.ParseArgs([]string{"-mode", "both"})
		if _, err := s.Check(true, rule(&v)); err == nil || err.Error() != "-mode: both needs -text" {
			t.Errorf("%v", err)
		}
	})
	t.Run("a rule runs again after a reset, and then names the default", func(t *testing.T) {
		var v vals
		s := v.set()
		s.ApplyEnv(env("T_EVERY", "2s"), true)
		runs := 0
		_, err := s.Check(true, func() error {
			runs++
			if v.dur < 3*time.Minute {
				return Blame("every", "is below 3m")
			}
			return nil
		})
		if runs != 2 || err == nil || err.Error() != "-every: the default 1m0s is below 3m" {
			t.Errorf("%d runs: %v", runs, err)
		}
	})
	t.Run("another error is returned as is", func(t *testing.T) {
		var v vals
		s := v.set()
		boom := errors.New("boom")
		if _, err := s.Check(true, func() error { return boom }); err != boom {
			t.Errorf("%v", err)
		}
	})
}

func TestPrintUsageListsEveryFlagWithItsVariableAndDefault(t *testing.T) {
	var v vals
	s := v.set()
	var b strings.Builder
	s.PrintUsage(&b)
	for _, want := range []string{
		"  -every duration  (T_EVERY)\n    \ta bounded duration (default 1m0s)\n",
		"  -mode server|client|both  (T_MODE)\n    \ta choice (default server)\n",
		"  -on  (T_ON)\n    \ta switch\n",
		"  -rate number  (T_RATE)\n    \ta probability\n",
		"  -text string  (T_TEXT)\n    \ta non-empty text (default \"a\")\n",
		"  -temp number  (T_TEMP)\n    \toptional tenths\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Index(b.String(), "-every") > strings.Index(b.String(), "-mode") {
		t.Errorf("flags not sorted:\n%s", b.String())
	}
}

func TestVarRefusesADefaultItsOwnChecksRefuse(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	var d time.Duration
	New("T_").Var(Duration{P: &d, Default: time.Hour, Max: time.Minute}, "x", "")
}

func TestShowHidesASecretInMessages(t *testing.T) {
	var v vals
	s := v.set()
	s.Lookup("text").Show = func(string) string { return "xxxxx" }
	s.Lookup("text").Value = Text{P: &v.text, Check: func(string) error { return errors.New("is wrong") }}
	err := s.ParseArgs([]string{"-text", "hunter2"})
	_, err2 := s.ApplyEnv(env("T_TEXT", "hunter2"), false)
	for _, e := range []error{err, err2} {
		if e == nil || strings.Contains(e.Error(), "hunter2") {
			t.Errorf("%v", e)
		}
	}
}
