package flagenv

import (
	"errors"
	"strconv"
	"testing"
)

func evenList(p *[]int) List[int] {
	return List[int]{P: p, Sep: ";", Format: strconv.Itoa, Parse: func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n%2 != 0 {
			return 0, errors.New("is not an even number")
		}
		return n, nil
	}}
}

func TestList(t *testing.T) {
	t.Run("the flag given several times collects every value in order", func(t *testing.T) {
		var got []int
		s := New("T_")
		s.Var(evenList(&got), "even", "even numbers")
		if err := s.ParseArgs([]string{"-even", "2", "-even", "4; 6"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ApplyEnv(env("T_EVEN", "8"), false); err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0] != 2 || got[1] != 4 || got[2] != 6 {
			t.Fatalf("got %v, want [2 4 6] (the command line wins over T_EVEN)", got)
		}
	})
	t.Run("the environment holds several values separated by ;", func(t *testing.T) {
		var got []int
		s := New("T_")
		s.Var(evenList(&got), "even", "even numbers")
		if _, err := s.ApplyEnv(env("T_EVEN", " 2 ;4;; 6 "), false); err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || s.Lookup("even").Value.String() != "2; 4; 6" {
			t.Fatalf("got %v (%q)", got, s.Lookup("even").Value.String())
		}
	})
	t.Run("a refused value is named by its position and nothing of it is kept", func(t *testing.T) {
		var got []int
		s := New("T_")
		s.Var(evenList(&got), "even", "even numbers")
		_, err := s.ApplyEnv(env("T_EVEN", "2;3"), false)
		want := `-even: T_EVEN="2;3" in part 2, "3" is not an even number`
		if err == nil || err.Error() != want || len(got) != 0 {
			t.Fatalf("got %v (%v), want %q", err, got, want)
		}
		if err := s.ParseArgs([]string{"-even", "5"}); err == nil || err.Error() != "-even: 5 is not an even number" {
			t.Fatalf("got %v", err)
		}
	})
}
