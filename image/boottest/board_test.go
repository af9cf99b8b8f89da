package main

import (
	"strings"
	"testing"

	"sensord/image/boards"
	"sensord/image/boottest/vm"
)

func TestBoardCmdlineKeepsTheCardsLine(t *testing.T) {
	card := "console=ttyS1,115200 console=ttyAMA10,115200 console=tty0 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 rootwait\n"
	got := BoardCmdline(card, "ttyS1")
	if !strings.HasPrefix(got, strings.TrimSpace(card)+" ") {
		t.Errorf("the card's cmdline.txt is not kept as is: %q", got)
	}
	for _, w := range []string{"systemd.debug_shell=ttyS1", "systemd.mask=serial-getty@ttyS1.service", "systemd.watchdog_sec=off"} {
		if !strings.Contains(got, " "+w) {
			t.Errorf("%q lacks %s", got, w)
		}
	}
}

func TestFATFilesAndMissing(t *testing.T) {
	var b strings.Builder
	b.WriteString("::/overlays/\n")
	for _, f := range boards.Files() {
		b.WriteString("::/" + f + "\n")
	}
	have := FATFiles(b.String())
	if m := boards.Missing(func(n string) bool { return have[n] }); len(m) != 0 {
		t.Errorf("missing %q from a complete listing", m)
	}
	if !have["overlays"] {
		t.Error("directory entry lost")
	}
	delete(have, "bcm2712-rpi-5-b.dtb")
	if m := boards.Missing(func(n string) bool { return have[n] }); len(m) != 1 || m[0] != "bcm2712-rpi-5-b.dtb" {
		t.Errorf("Missing = %q", m)
	}
}

func TestFindBoard(t *testing.T) {
	for _, m := range []string{"raspi3b", "raspi4b"} {
		b, err := findBoard(m)
		if err != nil || b.machine != m {
			t.Errorf("findBoard(%s) = %+v, %v", m, b, err)
		}
		if !strings.Contains(strings.Join(boards.Files(), " "), b.dtb) {
			t.Errorf("%s: device tree %s is not one the image puts on the FAT", m, b.dtb)
		}
	}
	if _, err := findBoard("raspi5"); err == nil || !strings.Contains(err.Error(), "raspi3b") {
		t.Errorf("findBoard(raspi5): %v", err)
	}
}

func TestShellLinesDropKernelMessages(t *testing.T) {
	r := vm.Result{Out: "[   41.898883] systemd[1]: Starting x...\r\nRaspberry Pi 3 Model B Rev 1.2\n[ 5.1] audit: y\n7.3.4+deb13-arm64\n"}
	got := strings.Join(shellLines(r), "|")
	if got != "Raspberry Pi 3 Model B Rev 1.2|7.3.4+deb13-arm64" {
		t.Errorf("shellLines = %q", got)
	}
}

func TestHasPrefixFields(t *testing.T) {
	card := "console=tty0 root=LABEL=RASPIROOT rw net.ifnames=0  rootwait \n"
	if !hasPrefixFields("console=tty0 root=LABEL=RASPIROOT rw net.ifnames=0 rootwait loglevel=4", card) {
		t.Error("the same fields, other spacing, plus additions: not a prefix")
	}
	for _, l := range []string{"console=tty0 root=/dev/sda2 rw net.ifnames=0 rootwait", "console=tty0", ""} {
		if hasPrefixFields(l, card) {
			t.Errorf("%q has the card's fields as prefix", l)
		}
	}
	if hasPrefixFields("anything", "") {
		t.Error("an empty cmdline.txt is a prefix of anything")
	}
}
