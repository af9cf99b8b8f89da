package daemon

// Node-RED interop: real Node-RED from npm runs the third reference flow
// (mqtt-in sensors/# -> function -> websocket-out /ws/dashboard) against the
// Mosquitto that sensord publishes to.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/testutil"
)

// nodeRedVersion is the Node-RED line that runs on Debian 12's Node.js 18
// and on 20 (Node-RED 5 needs Node.js 22); it is installed from npm into
// build/node-red once, where make bench's comparison finds it too.
const nodeRedVersion = "4.1.8"

// referenceFlow3 is the third reference flow: its function node turns an
// mqtt-in message (payload as a UTF-8 string, Node-RED's default) into the
// hub message.
func referenceFlow3(port string) string {
	return fmt.Sprintf(`[
  {"id":"t","type":"tab","label":"flow 3"},
  {"id":"broker","type":"mqtt-broker","name":"sensord's broker","broker":"127.0.0.1","port":"%s","clientid":"node-red-interop","usetls":false,"protocolVersion":"4","keepalive":"60","cleansession":true},
  {"id":"in","type":"mqtt in","z":"t","topic":"sensors/#","qos":"1","datatype":"utf8","broker":"broker","nl":false,"rap":true,"inputs":0,"wires":[["fn"]]},
  {"id":"fn","type":"function","z":"t","outputs":1,"wires":[["out"]],
   "func":"const parts = msg.topic.split('/');\nmsg.payload = {type: 'mqtt', source: parts[1], metric: parts[2], value: msg.payload, timestamp: Date.now()};\nreturn msg;"},
  {"id":"ws","type":"websocket-listener","path":"/ws/dashboard","wholemsg":"false"},
  {"id":"out","type":"websocket out","z":"t","server":"ws","client":"","wires":[]}
]`, port)
}

// nodeRedInstall installs Node-RED into build/node-red once per test
// binary and gives red.js. The Node-RED tests run in parallel: one that
// looked at the tree while another's npm install was writing it would
// find node-red's package.json and start a Node-RED without its
// dependencies ("Cannot find module 'express'"). The stamp, written only
// after npm succeeded, also tells an install cut short from a whole one.
var nodeRedInstall = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs("../../../../build/node-red")
	if err != nil {
		return "", err
	}
	red := filepath.Join(root, "node_modules", "node-red", "red.js")
	stamp := filepath.Join(root, "installed-node-red@"+nodeRedVersion)
	if _, err := os.Stat(stamp); err == nil {
		return red, nil
	}
	cmd := exec.Command("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", root, "node-red@"+nodeRedVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install node-red@%s into %s: %v\n%s", nodeRedVersion, root, err, out)
	}
	return red, os.WriteFile(stamp, nil, 0o644)
})

// nodeRed installs Node-RED if needed and returns red.js.
func nodeRed(t *testing.T) string {
	t.Helper()
	red, err := nodeRedInstall()
	if err != nil {
		t.Fatal(err)
	}
	return red
}

// startNodeRed runs Node-RED with flow on a free loopback port until the
// test ends; it returns Node-RED's address and its output, which the test
// log shows if the test fails.
func startNodeRed(t *testing.T, flow string) (addr string, log *testutil.Buffer) {
	t.Helper()
	red := nodeRed(t)
	dir := t.TempDir()
	flowFile := filepath.Join(dir, "flows.json")
	if err := os.WriteFile(flowFile, []byte(flow), 0o600); err != nil {
		t.Fatal(err)
	}
	addr = freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	settings, _ := filepath.Abs("testdata/nodered/settings.js")
	cmd := exec.Command("node", red, "--settings", settings)
	cmd.Env = append(os.Environ(), "NR_PORT="+port, "NR_USERDIR="+dir, "NR_FLOW="+flowFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log = new(testutil.Buffer)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.Write([]byte(sc.Text() + "\n"))
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("node-red:\n%s", log.String())
		}
	})
	return addr, log
}

func TestNodeREDMQTTInReceivesSensordsReadings(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	sd := start(t, nil, "-name", "kitchen", "-mqtt-url", broker.URL(), "-mqtt-discovery", "", "-sim-temp", "21.4", "-sim-humidity", "48.2")

	addr, log := startNodeRed(t, referenceFlow3(broker.Port))
	testutil.Until(t, 2*mosquittotest.Wait, func() bool { return strings.Contains(log.String(), "Connected to broker") },
		func() string { return "node-red's mqtt-in did not connect to the broker" })

	// Node-RED's /ws/dashboard carries sensord's readings, shaped by the
	// flow's function node from what mqtt-in delivered.
	var c *websocket.Conn
	var err error
	testutil.Until(t, mosquittotest.Wait, func() bool {
		c, _, err = websocket.DefaultDialer.Dial("ws://"+addr+"/ws/dashboard", nil)
		return err == nil
	}, func() string { return fmt.Sprintf("dial node-red: %v", err) })
	defer c.Close()
	want := map[string]string{"temperature": "21.4", "humidity": "48.2"}
	got := map[string]string{}
	for deadline := time.Now().Add(mosquittotest.Wait); len(got) < len(want) && time.Now().Before(deadline); {
		var m map[string]any
		if err := json.Unmarshal([]byte(readText(t, c, mosquittotest.Wait)), &m); err != nil {
			t.Fatal(err)
		}
		if m["source"] != "kitchen" {
			continue
		}
		metric, _ := m["metric"].(string)
		if w, ok := want[metric]; ok {
			got[metric], _ = m["value"].(string)
			if got[metric] != w {
				t.Errorf("%s: node-red got %v, want %q", metric, m["value"], w)
			}
		}
	}
	if len(got) < len(want) {
		t.Fatalf("node-red delivered %v of %v", got, want)
	}

	// The same broker message, through Node-RED's flow and through
	// sensord's own hub, has the same shape.
	nr := dial(t, "ws://"+addr+"/ws/dashboard")
	ours := dial(t, "ws://"+sd.addr+"/ws/dashboard")
	broker.Publish(t, "sensors/garage/door", false, "open")
	a, b := nextFrom(t, nr, "garage"), nextFrom(t, ours, "garage")
	delete(a, "timestamp")
	delete(b, "timestamp")
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("node-red %s, sensord %s", ja, jb)
	}
}

// nextFrom reads hub messages until one from source arrives.
func nextFrom(t *testing.T, c *websocket.Conn, source string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(mosquittotest.Wait); time.Now().Before(deadline); {
		var m map[string]any
		if err := json.Unmarshal([]byte(readText(t, c, mosquittotest.Wait)), &m); err != nil {
			t.Fatal(err)
		}
		if m["source"] == source {
			if _, ok := m["timestamp"].(float64); !ok {
				t.Errorf("no numeric timestamp in %v", m)
			}
			return m
		}
	}
	t.Fatalf("no message from %s", source)
	return nil
}
