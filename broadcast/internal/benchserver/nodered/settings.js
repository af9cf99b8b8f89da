// Node-RED settings for bench.sh's "nodered" server: the third server in
// the comparison, Node-RED's own websocket-out node in server mode. The
// port comes from the environment so that each run takes a free one; the
// editor and the admin API are off, since nothing but the flow is measured;
// info level, since bench.sh waits for "Started flows".
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.BENCH_PORT, 10),
    httpAdminRoot: false,
    flowFile: process.env.BENCH_FLOW,
    userDir: process.env.BENCH_USERDIR,
    credentialSecret: false,
    logging: { console: { level: "info", metrics: false, audit: false } },
    functionGlobalContext: {},
};
