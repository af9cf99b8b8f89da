package settings_test

import (
	"os"

	"sensord/image/settings"
)

func ExampleRender() {
	f := settings.File{
		Header: "demo.conf",
		Sections: []settings.Section{{
			Title: "network",
			Vars: []settings.Var{
				{Name: "HOSTNAME", Default: "sensord", Doc: "Network name."},
				{Name: "WIFI_SSID", Example: "MyNetwork", Doc: "Wi-Fi network."},
			},
		}},
	}
	_ = settings.Render(os.Stdout, f, map[string]string{"WIFI_SSID": "Home 2"})
	// Output:
	// # demo.conf
	//
	// # ---- network ----
	//
	// # Network name.
	// #HOSTNAME=sensord
	//
	// # Wi-Fi network.
	// WIFI_SSID="Home 2"
}
