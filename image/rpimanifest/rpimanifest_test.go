package rpimanifest

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"sensord/image/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden file in image/testdata")

var img = Image{
	Version: "0a5905d", URL: "file:///home/me/sensord/build/sensord-0a5905d-arm64.img.xz", ReleaseDate: "2026-12-06",
	ExtractSize: 1879048192, ExtractSHA256: strings.Repeat("ab", 32),
	DownloadSize: 301989888, DownloadSHA256: strings.Repeat("cd", 32),
}

func TestManifestMatchesGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, img); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "rpimanifest", "sensord.rpi-imager-manifest", b.Bytes(), *update)

	// The fields Imager's schema requires of an OS entry and a device.
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	entry := m["os_list"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "description", "icon", "url", "extract_size", "extract_sha256", "image_download_size", "release_date", "devices"} {
		if _, ok := entry[k]; !ok {
			t.Errorf("os_list entry lacks %s", k)
		}
	}
	if entry["init_format"] != "cloudinit" {
		t.Errorf("init_format %v", entry["init_format"])
	}
	for _, d := range m["imager"].(map[string]any)["devices"].([]any) {
		for _, k := range []string{"name", "description", "tags"} {
			if _, ok := d.(map[string]any)[k]; !ok {
				t.Errorf("device %v lacks %s", d, k)
			}
		}
	}
}

func TestWriteRefusesWhatImagerWouldRefuse(t *testing.T) {
	for name, f := range map[string]func(*Image){
		"a short hash":   func(i *Image) { i.ExtractSHA256 = "abc" },
		"no URL":         func(i *Image) { i.URL = "" },
		"no size":        func(i *Image) { i.DownloadSize = 0 },
		"no date":        func(i *Image) { i.ReleaseDate = "" },
		"upper-case hex": func(i *Image) { i.DownloadSHA256 = strings.Repeat("AB", 32) },
	} {
		i := img
		f(&i)
		if err := Write(&bytes.Buffer{}, i); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
