package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/settings"
)

// settingsName is the SENSORD_NAME the settings check gives the appliance
// through the dashboard's settings API.
const settingsName = "renamed-by-api"

// settingsWait bounds a change from the POST to sensord answering with it
// (the path unit, the helper, sensord's restart under emulation).
const settingsWait = 3 * time.Minute

// settingsStep: the owner changes one setting on the settings API; the
// image's path unit starts the root helper, which writes sensord.conf on
// the boot partition and restarts sensord, which then runs with it.
// Last in the scenario: the new name renames the MQTT topics the earlier
// checks read.
func (t *rig) settingsStep() harness.Step {
	return harness.Checks("a setting changed on the dashboard", t.checkSettingsChange)
}

func (t *rig) checkSettingsChange(ctx context.Context) {
	client := &http.Client{Timeout: 20 * time.Second}
	body, _ := json.Marshal(map[string]any{"set": map[string]string{"SENSORD_NAME": settingsName}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.url("/api/settings"), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+settings.BootTestOwnerToken)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fail("POST /api/settings: %v", err)
		return
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if !t.Check(resp.StatusCode == http.StatusAccepted, "POST /api/settings SENSORD_NAME=%s with the owner token: %d %s", settingsName, resp.StatusCode, strings.TrimSpace(string(answer))) {
		return
	}
	var accepted struct {
		ID string `json:"id"`
	}
	json.Unmarshal(answer, &accepted)
	if !t.Check(accepted.ID != "", "the 202 names the request: %s", strings.TrimSpace(string(answer))) {
		return
	}
	var name, outcome, outcomeID string
	var imager []string
	deadline := time.Now().Add(settingsWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var h struct {
			Name string `json:"name"`
		}
		if r, err := client.Get(t.url("/healthz")); err == nil {
			json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&h)
			r.Body.Close()
			name = h.Name
		}
		var s struct {
			Last   *settings.Status `json:"last"`
			Imager []string         `json:"imager"`
		}
		if r, err := client.Get(t.url("/api/settings")); err == nil {
			json.NewDecoder(io.LimitReader(r.Body, 256<<10)).Decode(&s)
			r.Body.Close()
			if s.Last != nil {
				outcome, outcomeID = s.Last.Outcome+" "+s.Last.Detail, s.Last.ID
			}
			imager = s.Imager
		}
		if name == settingsName && outcomeID == accepted.ID {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if !t.Check(name == settingsName, "sensord runs with SENSORD_NAME=%s after sensorctl apply-settings applied it (healthz says %q; its outcome: %q)", settingsName, name, outcome) {
		r, _ := t.guest(ctx, "systemctl status --no-pager -n 20 sensord-settings-apply.service sensord-settings-apply.path")
		for _, l := range r.Lines() {
			t.Logf("guest: %s", l)
		}
		return
	}
	t.Number("settings change: POST to sensord answering with it: %.1f s", time.Since(start).Seconds())
	t.Check(outcomeID == accepted.ID && strings.HasPrefix(outcome, settings.OutcomeApplied), "GET /api/settings says request %s applied: %q (of request %q)", accepted.ID, outcome, outcomeID)
	all := strings.Join(imager, " | ")
	t.Check(strings.Contains(all, "and its password: not used"),
		"GET /api/settings carries the first boot's Imager import for the page, saying Imager's user and password are not used: %q", all)
	r, _ := t.guest(ctx, "grep '^SENSORD_NAME=' /boot/firmware/sensord.conf; ls /run/sensord/ | grep -c settings-request")
	t.Check(r.Has("SENSORD_NAME="+settingsName), "sensord.conf on the boot partition says SENSORD_NAME=%s: %q", settingsName, strings.Join(r.Lines(), " | "))
	r, _ = t.guest(ctx, "journalctl -b -u sensord-settings-apply -o cat --no-pager | tail -n 5")
	t.Logf("journal of the helper: %s", strings.Join(r.Lines(), " | "))
}
