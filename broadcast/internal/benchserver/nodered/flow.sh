#!/usr/bin/env bash
# flow.sh RATE: prints the benchmark flow for Node-RED, the first reference
# flow's shape: an inject every 1/RATE seconds, a function that builds the
# sensor_update JSON (with the same "seq" as benchserver's frames, so that
# wsbench can find gaps), and websocket-out serving /ws/sensors.
set -euo pipefail
repeat=$(awk -v r="$1" 'BEGIN { printf "%g", 1 / r }')
cat <<JSON
[
  {"id": "bench-tab", "type": "tab", "label": "bench"},
  {"id": "bench-ws", "type": "websocket-listener", "path": "/ws/sensors", "wholemsg": "false"},
  {"id": "bench-tick", "type": "inject", "z": "bench-tab", "repeat": "$repeat", "once": true,
   "onceDelay": "0.1", "topic": "", "payload": "", "payloadType": "date", "wires": [["bench-fn"]]},
  {"id": "bench-fn", "type": "function", "z": "bench-tab", "outputs": 1, "wires": [["bench-out"]],
   "func": "const seq = (context.get('seq') || 0) + 1;\ncontext.set('seq', seq);\nmsg.payload = JSON.stringify({type: 'sensor_update', temperature: 21.4, humidity: 48.2, timestamp: Date.now(), seq: seq});\nreturn msg;"},
  {"id": "bench-out", "type": "websocket out", "z": "bench-tab", "server": "bench-ws", "client": "", "wires": []}
]
JSON
