// sensord dashboard: the current values, the history's ranges, the health
// and device panels and the sensor and clock banners. Plain browser
// JavaScript, no build step, no libraries. It uses only the public
// endpoints: GET api/history once per connection, and what hub.js's
// shared link carries: readings (with the daemon's dew point and absolute
// humidity) and system stats from WS ws/dashboard, GET healthz every 5 s,
// a stored range's GET api/history every minute. chart.js draws the
// chart; dom.js and format.js are the helpers every panel shares.
'use strict';
(function () {
  const STALE_READING = 15000;      // ms without a reading before the values count as stale (at least; see period)
  const MAX_POINTS = 5000;          // readings kept for the chart
  const UNIT_KEY = 'sensord.unit';
  const RANGE_KEY = 'sensord.range';
  const RANGE_REFRESH = 60000;      // ms between reloads of a stored range (history commits once a minute)
  const RANGE_TIMEOUT = 30000;      // ms a stored range may take to load: rolling up a long range takes longer than /healthz
  const DAY = 86400000;
  // Each stored range asks for about 700 rows: a step per ~1.5 px of a
  // wide chart. 1 h is raw when the sensor is slow enough to fit.
  const RANGES = {
    '1h': { span: 3600000, step: 0 },
    '24h': { span: DAY, step: 120000 },
    '7d': { span: 7 * DAY, step: 900000 },
    '30d': { span: 30 * DAY, step: 3600000 },
    '1y': { span: 365 * DAY, step: 12 * 3600000 },
  };

  const { $, el } = window.dom;
  const { fmt1, duration } = window.format;
  const url = window.sensord.url;

  // ---- state ----
  const pts = [];        // readings {t (ms), c (°C), h (%RH), dp, ah}, sorted by t, unique t
  let latest = null;     // newest reading
  let latestAt = 0;      // local clock (ms) when `latest` was measured
  let skew = 0;          // server clock minus local clock (ms), from Date headers
  let unit = loadUnit();
  let sys = null;        // last {"type":"system"} frame
  let health = null;     // last /healthz body
  let range = loadRange(); // 'live' or a key of RANGES
  let stored = null;     // rows of the stored range: {t, c, h, c0, c1, h0, h1}, or null while loading
  let storedFrom = 0, storedTo = 0, storedStep = 0;
  let historyStart = 0;  // ms of the oldest reading held (History-Start), 0 while unknown

  function loadUnit() {
    try { return localStorage.getItem(UNIT_KEY) === 'F' ? 'F' : 'C'; } catch (e) { return 'C'; }
  }
  function loadRange() {
    try { const r = localStorage.getItem(RANGE_KEY); return RANGES[r] ? r : 'live'; } catch (e) { return 'live'; }
  }
  function saveRange(r) {
    try { localStorage.setItem(RANGE_KEY, r); } catch (e) { /* private mode */ }
  }
  function saveUnit(u) {
    try { localStorage.setItem(UNIT_KEY, u); } catch (e) { /* private mode: the choice lasts this visit */ }
  }
  const toUnit = (c) => window.format.toUnit(c, unit);
  const unitSym = () => window.format.unitSym(unit);

  // ---- readings ----

  // reading extracts a sensor_update from a frame or history entry; it also
  // accepts the whole-message form {"payload": {...}} in case the daemon
  // runs with -wholemsg. Dew point (dp, °C) and absolute humidity (ah,
  // g/m³) are the daemon's (hub frames and history rows carry them), null
  // where it sent none: the page computes no derived value.
  function reading(m) {
    if (m && m.type === undefined && m.payload && typeof m.payload === 'object') m = m.payload;
    // History rows (api/history) carry no type; stream frames do.
    if (!m || (m.type !== 'sensor_update' && !(m.type === undefined && 'timestamp' in m))) return null;
    const t = Number(m.timestamp), c = Number(m.temperature), h = Number(m.humidity);
    if (!isFinite(t) || !isFinite(c) || !isFinite(h)) return null;
    const num = (v) => (typeof v === 'number' && isFinite(v) ? v : null);
    return { t: t, c: c, h: h, dp: num(m.dew_point), ah: num(m.absolute_humidity) };
  }

  // add inserts r in time order, ignoring a timestamp already held (the
  // server replays its last frame to a new connection, and history overlaps
  // the stream). It reports whether r was new.
  function add(r) {
    let i = pts.length;
    while (i > 0 && pts[i - 1].t > r.t) i--;
    if (i > 0 && pts[i - 1].t === r.t) return false;
    pts.splice(i, 0, r);
    if (pts.length > MAX_POINTS) pts.splice(0, pts.length - MAX_POINTS);
    return true;
  }

  // take records r as the newest reading if it is; live readings were
  // measured just now, history ones at their timestamp on the server clock.
  function take(r, live) {
    if (latest && r.t <= latest.t) return;
    latest = r;
    latestAt = live ? Date.now() : Math.min(Date.now(), r.t - skew);
    renderNow();
  }

  function noteSkew(res) {
    const d = Date.parse(res.headers.get('Date') || '');
    if (isFinite(d)) skew = d - Date.now();
  }

  let historyBusy = false, historyAgain = false;
  async function loadHistory() {
    // A reconnect while a load runs must still fill what it missed.
    if (historyBusy) { historyAgain = true; return; }
    historyBusy = true;
    try {
      // The last hour, or fewer readings when the sensor is fast, so the
      // answer stays within the daemon's row limit and MAX_POINTS.
      const span = Math.min(3600000, MAX_POINTS * period());
      const u = new URL(url('api/history'));
      u.searchParams.set('from', String(Math.round(Date.now() + skew - span)));
      const res = await fetch(u.href, { cache: 'no-store' });
      if (res.status === 401) { showAuth(true); return; }
      if (!res.ok) return;
      noteSkew(res);
      const list = await res.json();
      if (!Array.isArray(list)) return;
      let newest = null;
      for (const m of list) {
        const r = reading(m);
        if (r && add(r) && (!newest || r.t > newest.t)) newest = r;
      }
      if (newest) take(newest, false);
      drawSoon();
    } catch (e) {
      // The stream still works without history; the next connect retries.
    } finally {
      historyBusy = false;
      if (historyAgain) { historyAgain = false; loadHistory(); }
    }
  }

  // ---- current values ----
  const ui = {
    conn: $('conn'), connText: $('conn-text'),
    temp: $('temp'), tempUnit: $('temp-unit'), tempRange: $('temp-range'), tempCard: $('temp-card'),
    hum: $('hum'), humRange: $('hum-range'), humCard: $('hum-card'),
    updated: $('updated'), legendUnit: $('legend-unit'),
    chart: $('chart'), svg: $('chart-svg'),
    unitC: $('unit-c'), unitF: $('unit-f'),
  };

  function renderNow() {
    if (latest) {
      const t = fmt1(toUnit(latest.c)), h = fmt1(latest.h);
      if (ui.temp.textContent !== t) ui.temp.textContent = t;
      if (ui.hum.textContent !== h) ui.hum.textContent = h;
      ui.temp.dataset.celsius = String(latest.c);
      ui.temp.dataset.ts = String(latest.t);
      document.title = t + ' ' + unitSym() + ' · ' + h + ' % · ' + deviceName();
      $('dew').textContent = latest.dp === null ? '–' : fmt1(toUnit(latest.dp)) + ' ' + unitSym();
      $('abs').textContent = latest.ah === null ? '–' : fmt1(latest.ah) + ' g/m³';
    }
    ui.tempUnit.textContent = unitSym();
    ui.legendUnit.textContent = unitSym();
    renderRanges();
    tick();
  }

  function deviceName() {
    return (health && health.name) || 'sensord';
  }

  function renderRanges() {
    if (pts.length < 2) return;
    let cl = Infinity, ch = -Infinity, hl = Infinity, hh = -Infinity;
    for (const p of pts) {
      if (p.c < cl) cl = p.c;
      if (p.c > ch) ch = p.c;
      if (p.h < hl) hl = p.h;
      if (p.h > hh) hh = p.h;
    }
    const span = ' over ' + duration(pts[pts.length - 1].t - pts[0].t);
    ui.tempRange.textContent = 'min ' + fmt1(toUnit(cl)) + ' · max ' + fmt1(toUnit(ch)) + span;
    ui.humRange.textContent = 'min ' + fmt1(hl) + ' · max ' + fmt1(hh) + span;
  }

  // period estimates the sensor's read period from recent readings, so
  // "stale" means several missed reads whatever -period is.
  function period() {
    if (health && health.sensor && health.sensor.period > 0) return health.sensor.period * 1000;
    const n = pts.length;
    if (n < 3) return 2000;
    const d = [];
    for (let i = Math.max(1, n - 20); i < n; i++) d.push(pts[i].t - pts[i - 1].t);
    d.sort((a, b) => a - b);
    return d[d.length >> 1];
  }

  // tick runs every second: the "updated N s ago" line and staleness.
  function tick() {
    if (!latest) return;
    const age = Date.now() - latestAt;
    const s = Math.floor(age / 1000);
    ui.updated.textContent = s < 1 ? 'updated just now' : 'updated ' + duration(age) + ' ago';
    ui.updated.title = new Date(latest.t).toLocaleString();
    const stale = age > Math.max(STALE_READING, 5 * period());
    ui.updated.classList.toggle('stale', stale);
    ui.tempCard.classList.toggle('stale', stale);
    ui.humCard.classList.toggle('stale', stale);
  }

  function setUnit(u) {
    unit = u;
    saveUnit(u);
    ui.unitC.setAttribute('aria-pressed', String(u === 'C'));
    ui.unitF.setAttribute('aria-pressed', String(u === 'F'));
    renderNow();
    drawSoon();
  }
  ui.unitC.addEventListener('click', () => setUnit('C'));
  ui.unitF.addEventListener('click', () => setUnit('F'));

  // ---- chart (chart.js draws; this says what) ----
  const chart = window.chart.create(ui.chart, ui.svg, () => {
    const live = range === 'live';
    const empty = live ? 'waiting for readings…' : stored === null ? 'loading…' : 'no readings stored in this range';
    const d = { points: shown(), unit: unit, period: period(), empty: empty, range: range, step: 0 };
    if (!live) { d.from = storedFrom; d.to = storedTo; d.step = storedStep; }
    return d;
  });
  const draw = chart.draw, drawSoon = chart.drawSoon;

  // shown is what the chart draws: the live readings or the stored range.
  function shown() { return range === 'live' ? pts : (stored || []); }

  // ---- live stream (hub.js owns the socket and its reconnects) ----
  let connState = 'connecting';
  function setState(s) {
    connState = s;
    renderConn();
  }

  // renderConn: the badge says "live" only while the page is connected and
  // the sensor's reads return; a hung read is not live data.
  function renderConn() {
    const s = connState === 'live' && sensorCond === 'stuck' ? 'stale' : connState;
    if (ui.conn.dataset.state === s) return;
    ui.conn.dataset.state = s;
    ui.connText.textContent = s === 'live' ? 'live'
      : s === 'stale' ? 'connected, sensor read hung'
        : s === 'reconnecting' ? 'reconnecting…'
          : s === 'offline' ? 'offline, retrying' : 'connecting…';
  }

  function onFrame(x) {
    const r = reading(x);
    if (r) {
      if (add(r)) { take(r, true); drawSoon(); }
      return;
    }
    const s = x && x.type === undefined && x.payload ? x.payload : x;
    if (s && s.type === 'system') { sys = s; renderHealth(); }
  }

  // ---- health ----
  // onHealth takes each of hub.js's /healthz polls: a 503 still carries
  // the body, with the reason; a 401 none.
  function onHealth(body, res) {
    if (res) noteSkew(res);
    health = body;
    showAuth(!!res && res.status === 401);
    renderHealth();
  }

  // The sensor banner says whether the sensor works, in plain words and
  // the same numbers /healthz and the journal give (the watch's verdict
  // over its window); the connection badge says whether this page is
  // connected. A poll that failed says nothing about the sensor, so it
  // leaves the banner as it was.
  const BAD = { degraded: 'warn', failing: 'bad', stuck: 'bad' };
  let sensorCond = '';
  function renderSensorBanner(s) {
    if (!s || !s.state) return;
    sensorCond = s.state;
    renderConn();
    const bad = BAD[s.state];
    const banner = $('sensor-banner');
    banner.hidden = !bad;
    if (!bad) return;
    banner.className = 'banner ' + bad;
    const cap = (t) => (t ? t.charAt(0).toUpperCase() + t.slice(1) : '');
    $('sb-problem').textContent = cap(s.problem || 'the sensor fails');
    $('sb-fix').textContent = s.fix ? cap(s.fix) + '.' : '';
    $('sb-since').textContent = cap(s.summary || s.state) + ' · since ' + (s.since ? new Date(s.since).toLocaleString() : '–') +
      (s.last_error ? ' · last error: ' + s.last_error : '');
  }

  // The clock banner: with -clock-hold and the clock not yet set, readings
  // wait in memory; it says so, and what to do.
  // Once the clock is set, the live points drawn so far carry the unset
  // clock's times: they go, and the history (stamped correctly) replaces
  // them, so the chart has no stretch back to the card's old date.
  let clockWaiting = false;
  function renderClockBanner(c) {
    if (!c) return;
    const waiting = !!c.hold && !c.trusted;
    if (clockWaiting && !waiting) { pts.length = 0; loadHistory(); }
    clockWaiting = waiting;
    $('clock-banner').hidden = !waiting;
    if (!waiting) return;
    $('cb-held').textContent = Number(c.held || 0).toLocaleString();
    $('cb-fix').textContent = c.fix ? c.fix.charAt(0).toUpperCase() + c.fix.slice(1) + '.' : '';
  }

  // The clock banner's button sends this browser's clock (owner only): a
  // clock that agrees is confirmed, one that differs is set by the
  // appliance's root helper; the banner goes with the next health poll.
  // The owner token is the one every writing panel keeps (hub.js).
  $('cb-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('cb-owner'), status = $('cb-status');
    if (input.value) window.sensord.keepOwnerToken(input.value);
    const token = window.sensord.ownerToken() || input.value;
    if (!token) {
      $('cb-owner-label').hidden = false;
      input.focus();
      status.textContent = 'Enter the owner token (SENSORD_OWNER_TOKEN); this browser keeps it.';
      return;
    }
    status.textContent = 'Sending this browser\'s clock…';
    try {
      const res = await fetch(url('api/clock'), {
        method: 'POST', cache: 'no-store',
        headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + token },
        body: JSON.stringify({ time: Date.now() }),
      });
      let body = {};
      try { body = await res.json(); } catch (e) { /* not JSON */ }
      status.textContent = res.ok ? (body.message || 'Done') : 'Refused: ' + (body.error || res.status + ' ' + res.statusText);
      status.dataset.result = res.ok ? (body.trusted ? 'trusted' : 'requested') : 'refused';
      if (res.status === 401) {
        window.sensord.keepOwnerToken('');
        input.value = '';
        $('cb-owner-label').hidden = false;
      } else if (res.ok) {
        input.value = '';
        $('cb-owner-label').hidden = true;
        window.sensord.pollHealth();
      }
    } catch (e) {
      status.textContent = 'Sending failed: ' + e;
      status.dataset.result = 'failed';
    }
  });

  function showAuth(on) {
    $('auth').hidden = !on;
  }

  function set(id, text, sub, cls, sub2) {
    const dd = $(id);
    dd.textContent = '';
    dd.append(cls ? el('span', 'badge ' + cls, text) : text);
    for (const line of [sub, sub2]) if (line) dd.append(el('small', '', line));
  }

  function ago(ms) {
    if (!ms) return '';
    return duration(Date.now() + skew - ms) + ' ago';
  }

  // renderHealth fills the health and device panels and the banners from
  // the last /healthz body and system frame.
  function renderHealth() {
    const h = health || {};
    const x = h.extra || {};
    renderStatus(h);
    renderSensorStats(h.sensor);
    renderClients(h.clients);
    renderSensorBanner(h.sensor);
    renderClockBanner(h.clock);
    if (h.name) {
      $('name').textContent = h.name;
      if (!latest) document.title = h.name;
    }
    renderDevice(h, x.device || {});
    if (x.history) renderHistoryState(x.history);
    renderCalibration(x.calibration || {});
    renderWarnings(Array.isArray(h.warnings) ? h.warnings : []);
  }

  function renderStatus(h) {
    if (h.status === 'ok') set('h-status', 'OK', '', 'ok');
    else if (h.status === 'starting') set('h-status', 'Starting', 'waiting for the first good reading', 'warn');
    else if (h.status === 'unhealthy') set('h-status', 'Unhealthy', h.reason || '', 'bad');
    else if (h.status === 'degraded') set('h-status', 'Degraded', h.reason || '', 'warn');
    else if (h.status === 'unreachable') set('h-status', 'Unreachable', '/healthz did not answer', 'bad');
    else set('h-status', '–');
    // Client mode: the daemon also pushes readings to a remote server.
    const up = h.client;
    $('uplink').hidden = !up;
    if (up) set('h-uplink', up.state || '–', (up.url || '') + (up.reason ? ' · ' + up.reason : ''), up.state === 'connected' ? 'ok' : 'bad');
  }

  function renderSensorStats(s) {
    const pctText = (pct) => (pct >= 99.95 && pct < 100 ? '99.9' : pct.toFixed(1)) + ' %';
    if (s && s.window_reads > 0) {
      // The verdict's window, so the panel and the banner agree.
      const ok = s.window_reads - (s.window_failed || 0);
      const mins = Math.round((s.window_seconds || 0) / 60);
      set('h-rate', pctText(ok * 100 / s.window_reads),
        ok.toLocaleString() + ' of ' + Number(s.window_reads).toLocaleString() + ' reads in the last ' +
        (mins >= 2 ? mins + ' minutes' : Math.round(s.window_seconds || 0) + ' s'), '', s.name);
    } else if (s && typeof s.success_rate === 'number') {
      set('h-rate', pctText(s.success_rate * 100),
        Number(s.successes || 0).toLocaleString() + ' of ' + Number(s.reads || 0).toLocaleString() + ' reads', '', s.name);
    } else set('h-rate', '–');
    const kinds = s && s.errors ? Object.keys(s.errors).filter((k) => s.errors[k] > 0) : [];
    const counts = kinds.map((k) => k.replace('_', ' ') + ' ' + Number(s.errors[k]).toLocaleString()).join(' · ');
    if (s && s.last_error) set('h-error', s.last_error, ago(s.last_error_time), '', counts);
    else set('h-error', s ? 'none' : '–');
  }

  function renderClients(c) {
    if (!c || typeof c !== 'object') { set('h-clients', '–'); return; }
    let n = 0;
    const parts = [];
    const order = ['dashboard', 'sensors', 'api'];
    const keys = Object.keys(c).sort((a, b) => (order.indexOf(a) + 1 || 9) - (order.indexOf(b) + 1 || 9));
    for (const k of keys) { n += Number(c[k]) || 0; parts.push(k + ' ' + c[k]); }
    set('h-clients', String(n), parts.join(' · '));
  }

  function renderDevice(h, dev) {
    $('h-cpu-label').textContent = dev.cores ? 'CPU load (1 min, ' + dev.cores + (dev.cores === 1 ? ' core)' : ' cores)') : 'CPU load (1 min)';
    set('h-cpu', sys && isFinite(sys.cpu) ? Number(sys.cpu).toFixed(2) : '–');
    set('h-mem', sys && isFinite(sys.memory) ? Number(sys.memory).toFixed(1) + ' %' : '–');
    set('d-ips', Array.isArray(dev.addresses) && dev.addresses.length ? dev.addresses.join(', ') : '–', dev.hostname ? dev.hostname + '.local' : '');
    $('d-soc-row').hidden = !isFinite(dev.soc_temp);
    if (isFinite(dev.soc_temp)) set('d-soc', fmt1(toUnit(dev.soc_temp)) + ' ' + unitSym());
    $('d-wifi-row').hidden = !dev.wifi;
    if (dev.wifi) {
      const dbm = Number(dev.wifi.signal_dbm);
      set('d-wifi', dbm.toFixed(0) + ' dBm', (dbm >= -60 ? 'good' : dbm >= -70 ? 'fair' : 'weak') + ' · ' + dev.wifi.interface);
    }
    // A self-signed certificate is trusted by comparing this with what the
    // browser shows for the site.
    $('d-tls-row').hidden = !h.tls_fingerprint;
    if (h.tls_fingerprint) set('d-tls', h.tls_fingerprint, 'compare with the certificate your browser shows');
    set('h-uptime', isFinite(h.uptime) ? duration(h.uptime * 1000) : '–');
    set('h-version', h.version || '–');
  }

  function renderHistoryState(hi) {
    if (hi.enabled && hi.failing_since) {
      set('h-history', 'cannot be written', hi.error || '', 'bad', (hi.fix || '') + (hi.dropped ? ' · ' + Number(hi.dropped).toLocaleString() + ' readings lost' : ''));
    } else if (hi.enabled) {
      set('h-history', hi.path ? 'on disk' : 'in memory only', (hi.path || 'lost at restart; set -history-dir') + (hi.error ? ' · ' + hi.error : ''), '',
        Number(hi.written || 0).toLocaleString() + ' readings written' + (hi.start ? ' since ' + new Date(hi.start).toLocaleDateString() : ''));
    } else set('h-history', 'unavailable', hi.error || '', 'bad');
  }

  function renderCalibration(cal) {
    const offs = [];
    if (cal.temperature_offset) offs.push('temperature ' + (cal.temperature_offset > 0 ? '+' : '') + cal.temperature_offset + ' °C');
    if (cal.humidity_offset) offs.push('humidity ' + (cal.humidity_offset > 0 ? '+' : '') + cal.humidity_offset + ' %');
    $('calib').hidden = !offs.length;
    $('calib').textContent = offs.length ? 'calibrated: ' + offs.join(', ') : '';
  }

  function renderWarnings(warn) {
    const list = $('warning-list');
    list.textContent = '';
    for (const w of warn) list.append(el('li', '', String(w)));
    $('warnings').hidden = warn.length === 0;
  }

  // ---- ranges ----
  // rangeQuery is the api/history query of the range shown.
  function rangeQuery(format) {
    const u = new URL(url('api/history'));
    const now = Date.now() + skew;
    if (range === 'live') {
      const from = pts.length ? pts[0].t : now - 3600000;
      u.searchParams.set('from', String(Math.floor(from)));
      u.searchParams.set('to', String(Math.ceil(now) + 1));
    } else {
      const r = RANGES[range];
      // 1 h raw unless the sensor is so fast that it would not fit.
      const step = r.step || (r.span / period() > 5000 ? 60000 : 0);
      // Steps start on round times (in UTC), so rows do not shift as the
      // range moves on.
      const from = step ? Math.floor((now - r.span) / step) * step : Math.floor(now - r.span);
      u.searchParams.set('from', String(from));
      u.searchParams.set('to', String(Math.ceil(now) + 1));
      if (step) u.searchParams.set('step', (step / 60000) + 'm');
    }
    if (format) u.searchParams.set('format', format);
    return u;
  }

  // STEPS are the steps a stored range may fall back to, coarsest first.
  const STEPS = [12 * 3600000, 3600000, 900000, 120000, 60000];

  // clipToStart starts a stored range where the history starts, with a
  // step fine enough to draw what there is: a new device's first day
  // shows in the 30-day and 1-year ranges.
  function clipToStart(u) {
    if (range === 'live' || !historyStart || u.searchParams.get('format') === 'csv') return;
    const from = Number(u.searchParams.get('from')), to = Number(u.searchParams.get('to'));
    if (historyStart <= from) return;
    let step = RANGES[range].step || 0;
    if (step) {
      for (const s of STEPS) if (s < step && (to - historyStart) / step < 60) step = s;
      // Under an hour of history: every reading, when they fit.
      if ((to - historyStart) / step < 60 && (to - historyStart) / period() <= 5000) step = 0;
      if (step) u.searchParams.set('step', (step / 60000) + 'm');
      else u.searchParams.delete('step');
    }
    u.searchParams.set('from', String(step ? Math.floor(historyStart / step) * step : historyStart));
    // The server's clock is known to a second (its Date header): a young
    // history's newest readings may lie up to a second past "now".
    u.searchParams.set('to', String(to + 1000));
  }

  function noteStart() {
    const note = $('history-start');
    const from = range === 'live' ? 0 : Date.now() + skew - RANGES[range].span;
    note.hidden = !historyStart || range === 'live' || historyStart <= from;
    if (!note.hidden) note.textContent = 'History starts ' + new Date(historyStart).toLocaleString() + ': nothing is stored before it.';
  }

  // The stored range reloads through hub.js every RANGE_REFRESH; asked is
  // the query of its newest request, the only one answered.
  let asked = null;
  function storedQuery() {
    asked = rangeQuery('');
    clipToStart(asked);
    return asked.href;
  }
  const storedPoll = window.sensord.poll(storedQuery, RANGE_REFRESH, onStored, RANGE_TIMEOUT);
  function loadStored() {
    if (range === 'live') storedPoll.stop();
    else storedPoll.now();
  }

  function onStored(body, res) {
    if (!res) return; // unreachable: keep what is drawn; the next refresh retries
    if (res.status === 401) { showAuth(true); return; }
    const u = asked;
    const hs = Number(res.headers.get('History-Start'));
    if (hs > 0 && hs !== historyStart) {
      historyStart = hs;
      noteStart();
      const v = rangeQuery('');
      clipToStart(v);
      const same = (k) => v.searchParams.get(k) === u.searchParams.get(k);
      if (!same('from') || !same('step')) { loadStored(); return; } // the range starts later than asked
    }
    if (!res.ok || !Array.isArray(body)) {
      stored = [];
    } else {
      stored = body.map((r) => ({
        t: r.timestamp, c: r.temperature, h: r.humidity,
        c0: r.temperature_min, c1: r.temperature_max, h0: r.humidity_min, h1: r.humidity_max,
      })).filter((p) => isFinite(p.t) && isFinite(p.c) && isFinite(p.h));
    }
    storedFrom = Number(u.searchParams.get('from'));
    storedTo = Number(u.searchParams.get('to'));
    const st = u.searchParams.get('step');
    storedStep = st ? parseInt(st, 10) * 60000 : 0;
    drawSoon();
  }

  function setRange(r) {
    range = RANGES[r] ? r : 'live';
    saveRange(range);
    for (const b of document.querySelectorAll('.ranges button')) b.setAttribute('aria-pressed', String(b.dataset.range === range));
    stored = null;
    storedPoll.stop();
    updateDownload();
    noteStart();
    draw(); // at once, so nothing reads the old range's chart meanwhile
    loadStored();
  }
  for (const b of document.querySelectorAll('.ranges button')) b.addEventListener('click', () => setRange(b.dataset.range));

  // updateDownload points the CSV link at the range shown, each time it is
  // about to be followed, so "live" covers up to the click.
  function updateDownload() {
    $('download').href = rangeQuery('csv').href;
  }
  $('download').addEventListener('pointerdown', updateDownload);
  $('download').addEventListener('focus', updateDownload);
  $('download').addEventListener('click', updateDownload);

  // ---- start ----
  $('host').textContent = location.host;
  $('auth-host').textContent = location.host;
  $('ws-host').textContent = location.host;
  for (const [id, p] of [['link-health', 'healthz'], ['link-history', 'api/history'], ['link-metrics', 'metrics'], ['backup', 'api/history/backup']]) $(id).href = url(p);
  setUnit(unit);
  setRange(range);
  draw();
  loadHistory();
  window.sensord.on('state', setState);
  // fills whatever happened while we were away, in the live view and in
  // a stored range
  window.sensord.on('open', () => { loadHistory(); if (range !== 'live') loadStored(); });
  window.sensord.on('frame', onFrame);
  window.sensord.on('health', onHealth);
  setInterval(tick, 1000);
})();
