package main

import (
	"os/exec"
	"strings"
	"testing"
)

func TestShellWordsSurviveSh(t *testing.T) {
	words := []string{"ssid=73656e736f7264", `psk="correct horse's battery"`, "a'b''c", ""}
	out, err := exec.Command("sh", "-c", "printf '%s\\n' "+shellWords(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); strings.Join(got, "|") != strings.Join(words, "|") {
		t.Errorf("sh printed %q, want %q", got, words)
	}
}

func TestInetReadsTheFirstIPv4Address(t *testing.T) {
	for out, want := range map[string]string{
		"3: wlan0    inet 192.168.77.127/24 metric 600 brd 192.168.77.255 scope global dynamic wlan0\\       valid_lft 3504sec": "192.168.77.127",
		"up\n": "",
		"":     "",
	} {
		if got := inet(out); got != want {
			t.Errorf("inet(%q) = %q, want %q", out, got, want)
		}
	}
}
