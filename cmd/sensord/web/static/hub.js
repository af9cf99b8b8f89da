// sensord dashboard: the page's one link to the daemon, shared by every
// panel. It owns the WS ws/dashboard socket (reconnecting with back-off)
// and every poll (GET healthz every 5 s, and what a panel asks for with
// poll); the panels subscribe to what they carry, so a page holds one
// socket and polls each endpoint once however many panels it shows. If
// the page was opened with ?access_token=..., every request carries it.
//
//   sensord.url(path, ws)    an endpoint's URL, relative to the page
//   sensord.on('frame', fn)  fn(m) for each JSON message on the socket
//                            (each element of an array frame)
//   sensord.on('open', fn)   fn() each time the socket (re)opens
//   sensord.on('state', fn)  fn(s) when the link's state changes:
//                            connecting, live, reconnecting, offline
//   sensord.on('health', fn) fn(body, res) after each poll: the parsed
//                            body (null on 401) and the response, or
//                            {status: 'unreachable'} and null
//   sensord.pollHealth()     poll healthz now
//   sensord.poll(path, every, fn, timeout)
//                            GET path (an endpoint, or a function giving a
//                            whole URL, made with url, for a query that
//                            changes) every `every` ms, one at a time:
//                            fn(body, res) with the parsed JSON body (null
//                            if not JSON) and the response, or null and
//                            null when unreachable or past timeout ms
//                            (default: 4 s). Returns {now(), stop()}: now
//                            polls at once (an answer to an older request
//                            is then dropped), stop until the next now.
//   sensord.ownerToken()     the owner token this browser keeps ('' none)
//   sensord.keepOwnerToken(v) keep v for every panel that writes ('' forgets)
//
// The link starts once the page's deferred scripts have all subscribed
// (DOMContentLoaded).
'use strict';
window.sensord = (function () {
  const HEALTH_EVERY = 5000;        // ms between /healthz polls
  const POLL_TIMEOUT = 4000;        // ms a poll may take before it counts as unreachable, unless its caller says otherwise
  const STALE_STREAM = 15000;       // ms without any frame before an open socket counts as dead (system stats come every 5 s)
  const OFFLINE_AFTER = 30000;      // ms of failed reconnects before "reconnecting" becomes "offline"
  const BACKOFF_MIN = 500, BACKOFF_MAX = 8000; // reconnect back-off bounds, ms

  const token = new URLSearchParams(location.search).get('access_token');

  // url resolves an endpoint against the page (so a reverse proxy prefix
  // keeps working) and passes the access token on.
  function url(path, ws) {
    const u = new URL(path, document.baseURI);
    u.search = '';
    u.hash = '';
    if (token) u.searchParams.set('access_token', token);
    if (ws) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }

  const subs = { frame: [], open: [], state: [], health: [] };
  function on(event, fn) {
    if (!subs[event]) throw new Error('sensord.on: no event ' + event);
    subs[event].push(fn);
  }
  // emit calls every subscriber; one that throws does not stop the others.
  function emit(event, ...args) {
    for (const fn of subs[event]) {
      try { fn(...args); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }

  // ---- the socket, with reconnect ----
  let ws = null;          // the current socket, null while disconnected
  let attempts = 0;       // failed connects since the last success
  let retryTimer = 0;
  let downSince = 0;      // when the stream was lost (0 while live)
  let lastFrame = 0;      // local time of the last frame on `ws`
  let everLive = false;
  let state = '';

  function setState(s) {
    if (state === s) return;
    state = s;
    emit('state', s);
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (ws) return;
    let sock;
    try {
      sock = new WebSocket(url('ws/dashboard', true));
    } catch (e) {
      lost();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      attempts = 0;
      downSince = 0;
      everLive = true;
      lastFrame = Date.now();
      setState('live');
      emit('open');
      pollHealth();
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      lastFrame = Date.now();
      onFrame(ev.data);
    };
    sock.onclose = () => { if (ws === sock) lost(); };
  }

  // lost drops the current socket (if any) and schedules the next attempt
  // with exponential back-off and jitter, so a fleet of open dashboards does
  // not hit a rebooting Pi in lockstep.
  function lost() {
    if (ws) {
      const s = ws;
      ws = null;
      s.onopen = s.onmessage = s.onclose = null;
      try { s.close(); } catch (e) { /* already closed */ }
    }
    if (!downSince) downSince = Date.now();
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, attempts++));
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, base / 2 + Math.random() * base / 2);
    updateDown();
  }

  function updateDown() {
    if (ws && ws.readyState === WebSocket.OPEN) return;
    if (!everLive && !downSince) return setState('connecting');
    const off = !navigator.onLine || (downSince && Date.now() - downSince > OFFLINE_AFTER);
    setState(off ? 'offline' : 'reconnecting');
  }

  function retryNow() {
    if (ws) return;
    attempts = 0;
    connect();
  }

  function onFrame(data) {
    if (typeof data !== 'string') return;
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    for (const x of Array.isArray(m) ? m : [m]) emit('frame', x);
  }

  // ---- polls ----
  function poll(path, every, fn, timeout) {
    let timer = 0;
    let gen = 0; // only the newest request is answered and schedules the next, so polls never multiply
    async function now() {
      clearTimeout(timer);
      const mine = ++gen;
      const ctl = new AbortController();
      const kill = setTimeout(() => ctl.abort(), timeout || POLL_TIMEOUT);
      let body = null, res = null;
      try {
        res = await fetch(typeof path === 'function' ? path() : url(path), { cache: 'no-store', signal: ctl.signal });
        try { body = await res.json(); } catch (e) { body = null; }
      } catch (e) {
        res = null;
      } finally {
        clearTimeout(kill);
      }
      if (mine !== gen) return; // stopped, or a newer request started meanwhile
      timer = setTimeout(now, every);
      fn(body, res);
    }
    function stop() {
      gen++;
      clearTimeout(timer);
    }
    return { now, stop };
  }

  // The owner token, asked for once by whichever panel writes first and
  // kept in this browser for all of them; private mode keeps nothing.
  const OWNER_KEY = 'sensord.ownerToken';
  function ownerToken() {
    try { return localStorage.getItem(OWNER_KEY) || ''; } catch (e) { return ''; }
  }
  function keepOwnerToken(v) {
    try { if (v) localStorage.setItem(OWNER_KEY, v); else localStorage.removeItem(OWNER_KEY); } catch (e) { /* private mode */ }
  }

  // healthz: 503 still carries the body, with the reason; 401 carries none.
  const health = poll('healthz', HEALTH_EVERY, (body, res) => {
    if (!res) body = { status: 'unreachable' };
    else if (res.status === 401) body = null;
    emit('health', body, res);
  });
  const pollHealth = health.now;

  function start() {
    window.addEventListener('online', retryNow);
    // The browser knows the network is gone before any socket times out.
    window.addEventListener('offline', () => { lost(); });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) retryNow(); });
    updateDown();
    connect();
    pollHealth();
    setInterval(() => {
      // A socket can stay "open" across a dead link (Wi-Fi dropped, Pi
      // unplugged); the server's 5 s system frames prove it alive.
      if (ws && ws.readyState === WebSocket.OPEN && Date.now() - lastFrame > STALE_STREAM) lost();
      updateDown();
    }, 1000);
  }
  if (document.readyState === 'complete') setTimeout(start);
  else document.addEventListener('DOMContentLoaded', start);

  return { url, on, poll, pollHealth, ownerToken, keepOwnerToken };
})();
