// Node-RED settings for the interop test: loopback only, no editor, the
// flow and user directory the test makes.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.NR_PORT),
    userDir: process.env.NR_USERDIR,
    flowFile: process.env.NR_FLOW,
    httpAdminRoot: false,
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    logging: { console: { level: "info", metrics: false, audit: false } },
};
