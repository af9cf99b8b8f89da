package alert_test

import (
	"fmt"
	"time"

	"sensord/sensor"
	"sensord/sensor/alert"
)

func ExampleParseRule() {
	r, err := alert.ParseRule("hot: temperature > 30 for 5m clear 29")
	fmt.Println(r, err)
	_, err = alert.ParseRule("hot: temperature > 30 clear 31")
	fmt.Println(err)
	// Output:
	// hot: temperature > 30 for 5m0s clear 29 <nil>
	// alert: rule "hot: temperature > 30 clear 31" clears at 31, which is not below its threshold 30: a rule for > clears once the value is back below it
}

func ExampleEngine() {
	r, _ := alert.ParseRule("hot: temperature > 30 for 4s clear 29")
	e, _ := alert.New(alert.Options{Rules: []alert.Rule{r}, Period: 2 * time.Second})
	t0 := time.UnixMilli(1763856000000)
	for i, temp := range []sensor.Deci{305, 306, 307, 289, 290, 288} {
		evs, _ := e.Observe(sensor.Derive(sensor.Reading{Temperature: temp, Humidity: 500, Time: t0.Add(time.Duration(i) * 2 * time.Second)}))
		for _, ev := range evs {
			b, _ := ev.MarshalJSON()
			fmt.Println(string(b))
		}
	}
	// Output:
	// {"type":"alert","name":"hot","state":"raised","metric":"temperature","value":30.7,"threshold":30,"timestamp":1763856004000}
	// {"type":"alert","name":"hot","state":"cleared","metric":"temperature","value":28.8,"threshold":29,"timestamp":1763856010000}
}
