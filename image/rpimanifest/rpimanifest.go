// Package rpimanifest writes the Raspberry Pi Imager manifest of the image
// (sensord-<version>-arm64.rpi-imager-manifest, beside the .img.xz):
// opened in Imager 2 (double-click, or App Options > Content Repository >
// Use custom file), it lists the image for the Pis it supports and, with
// init_format "cloudinit", offers Imager's OS customisation, whose
// cloud-init files the appliance imports at its first boot (package
// image/cloudinit).
//
// The format is Imager's OS list (rpi-imager v2.0.11:
// doc/json-schema/os-list-schema.json; doc/local_json/create_local_json.py
// writes the same for local files): os_list entries with name,
// description, icon, url, extract_size, extract_sha256,
// image_download_size, image_download_sha256, release_date, init_format,
// devices; and the imager.devices list Imager's device step shows (a
// manifest without it leaves that step empty). Imager fetches url as
// given: a file path needs a file:// URL, which is why build.sh writes the
// absolute path of its output, or IMAGE_URL where the image is published.
package rpimanifest

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"sensord/image/boards"
)

// InitFormat tells Imager which customisation the image reads.
const InitFormat = "cloudinit"

// Image is what the build knows about the image it wrote.
type Image struct {
	Version     string
	URL         string // where Imager downloads it from (file:// or https://)
	ReleaseDate string // YYYY-MM-DD
	// ExtractSize and ExtractSHA256 describe the .img; DownloadSize and
	// DownloadSHA256 the file at URL (the .img.xz, or the .img itself).
	ExtractSize    int64
	ExtractSHA256  string
	DownloadSize   int64
	DownloadSHA256 string
}

type device struct {
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	Tags         []string `json:"tags"`
	MatchingType string   `json:"matching_type"`
}

type osEntry struct {
	Name                string   `json:"name"`
	Description         string   `json:"description"`
	Icon                string   `json:"icon"`
	URL                 string   `json:"url"`
	ExtractSize         int64    `json:"extract_size"`
	ExtractSHA256       string   `json:"extract_sha256"`
	ImageDownloadSize   int64    `json:"image_download_size"`
	ImageDownloadSHA256 string   `json:"image_download_sha256"`
	ReleaseDate         string   `json:"release_date"`
	InitFormat          string   `json:"init_format"`
	Devices             []string `json:"devices"`
	Architecture        string   `json:"architecture"`
}

type manifest struct {
	Imager struct {
		Devices []device `json:"devices"`
	} `json:"imager"`
	OSList []osEntry `json:"os_list"`
}

// familyNames are the names Imager's device step shows for each tag.
var familyNames = map[string]string{
	"pi5-64bit": "Raspberry Pi 5",
	"pi4-64bit": "Raspberry Pi 4",
	"pi3-64bit": "Raspberry Pi 3",
}

// Write writes img's manifest, for the models of package boards.
func Write(w io.Writer, img Image) error {
	for _, h := range []string{img.ExtractSHA256, img.DownloadSHA256} {
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return fmt.Errorf("rpimanifest: %q is not a SHA-256 in hex", h)
		}
	}
	if img.URL == "" || img.ExtractSize <= 0 || img.DownloadSize <= 0 || len(img.ReleaseDate) != len("2006-01-02") {
		return fmt.Errorf("rpimanifest: incomplete image description %+v", img)
	}
	var m manifest
	models := map[string][]string{}
	var tags []string
	for _, b := range boards.Models() {
		if _, ok := models[b.ImagerTag]; !ok {
			tags = append(tags, b.ImagerTag)
		}
		models[b.ImagerTag] = append(models[b.ImagerTag], strings.TrimPrefix(b.Name, "Raspberry Pi "))
	}
	slices.SortFunc(tags, func(a, b string) int { return strings.Compare(b, a) }) // newest first, as Imager lists them
	for _, t := range tags {
		m.Imager.Devices = append(m.Imager.Devices, device{
			Name: familyNames[t], Description: "sensord runs on: " + strings.Join(slices.Compact(models[t]), ", "),
			Tags: []string{t}, MatchingType: "exclusive",
		})
	}
	m.OSList = []osEntry{{
		Name:                "sensord " + img.Version,
		Description:         "DHT22 temperature and humidity appliance: a live dashboard at http://<hostname>.local/, WebSocket, MQTT",
		URL:                 img.URL,
		ExtractSize:         img.ExtractSize,
		ExtractSHA256:       img.ExtractSHA256,
		ImageDownloadSize:   img.DownloadSize,
		ImageDownloadSHA256: img.DownloadSHA256,
		ReleaseDate:         img.ReleaseDate,
		InitFormat:          InitFormat,
		Devices:             tags,
		Architecture:        "armv8",
	}}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}
