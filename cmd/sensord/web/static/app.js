// sensord dashboard. Plain browser JavaScript, no build step, no libraries.
// It uses only the public endpoints: GET api/history once per connection,
// and what hub.js's shared link carries: readings and system stats from
// WS ws/dashboard, GET healthz every 5 s.
'use strict';
(function () {
  const STALE_READING = 15000;      // ms without a reading before the values count as stale (at least; see period)
  const MAX_POINTS = 5000;          // readings kept for the chart
  const UNIT_KEY = 'sensord.unit';
  const RANGE_KEY = 'sensord.range';
  const RANGE_REFRESH = 60000;      // ms between reloads of a stored range (history commits once a minute)
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

  const $ = (id) => document.getElementById(id);
  const SVGNS = 'http://www.w3.org/2000/svg';
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
  const toUnit = (c) => (unit === 'F' ? c * 9 / 5 + 32 : c);
  const unitSym = () => (unit === 'F' ? '°F' : '°C');
  const fmt1 = (v) => (Math.round(v * 10) / 10).toFixed(1).replace('-0.0', '0.0');

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
  const el = {
    conn: $('conn'), connText: $('conn-text'),
    temp: $('temp'), tempUnit: $('temp-unit'), tempRange: $('temp-range'), tempCard: $('temp-card'),
    hum: $('hum'), humRange: $('hum-range'), humCard: $('hum-card'),
    updated: $('updated'), legendUnit: $('legend-unit'),
    chart: $('chart'), svg: $('chart-svg'), desc: $('chart-desc'),
    unitC: $('unit-c'), unitF: $('unit-f'),
  };

  function renderNow() {
    if (latest) {
      const t = fmt1(toUnit(latest.c)), h = fmt1(latest.h);
      if (el.temp.textContent !== t) el.temp.textContent = t;
      if (el.hum.textContent !== h) el.hum.textContent = h;
      el.temp.dataset.celsius = String(latest.c);
      el.temp.dataset.ts = String(latest.t);
      document.title = t + ' ' + unitSym() + ' · ' + h + ' % · ' + deviceName();
      $('dew').textContent = latest.dp === null ? '–' : fmt1(toUnit(latest.dp)) + ' ' + unitSym();
      $('abs').textContent = latest.ah === null ? '–' : fmt1(latest.ah) + ' g/m³';
    }
    el.tempUnit.textContent = unitSym();
    el.legendUnit.textContent = unitSym();
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
    el.tempRange.textContent = 'min ' + fmt1(toUnit(cl)) + ' · max ' + fmt1(toUnit(ch)) + span;
    el.humRange.textContent = 'min ' + fmt1(hl) + ' · max ' + fmt1(hh) + span;
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

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min' + (s % 60 && m < 10 ? ' ' + (s % 60) + ' s' : '');
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  // tick runs every second: the "updated N s ago" line and staleness.
  function tick() {
    if (!latest) return;
    const age = Date.now() - latestAt;
    const s = Math.floor(age / 1000);
    el.updated.textContent = s < 1 ? 'updated just now' : 'updated ' + duration(age) + ' ago';
    el.updated.title = new Date(latest.t).toLocaleString();
    const stale = age > Math.max(STALE_READING, 5 * period());
    el.updated.classList.toggle('stale', stale);
    el.tempCard.classList.toggle('stale', stale);
    el.humCard.classList.toggle('stale', stale);
  }

  function setUnit(u) {
    unit = u;
    saveUnit(u);
    el.unitC.setAttribute('aria-pressed', String(u === 'C'));
    el.unitF.setAttribute('aria-pressed', String(u === 'F'));
    renderNow();
    drawSoon();
  }
  el.unitC.addEventListener('click', () => setUnit('C'));
  el.unitF.addEventListener('click', () => setUnit('F'));

  // ---- chart (hand-drawn SVG) ----
  let drawPending = false;
  function drawSoon() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; draw(); });
  }

  function node(parent, name, attrs, text) {
    const n = document.createElementNS(SVGNS, name);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    parent.appendChild(n);
    return n;
  }

  // scale picks `n` evenly spaced, round tick values covering [lo, hi] with
  // at least minSpan between the ends. Both axes use the same n, so their
  // grid lines coincide and one set of lines serves both.
  function scale(lo, hi, n, minSpan) {
    if (hi - lo < minSpan) { const mid = (lo + hi) / 2; lo = mid - minSpan / 2; hi = mid + minSpan / 2; }
    const raw = (hi - lo) / (n - 1);
    const steps = [1, 2, 5, 10]; // 2.5 would need a second decimal (20.25) or print unevenly (20.3, 20.5, 20.8)
    let mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (;;) {
      for (const s of steps) {
        const step = s * mag;
        if (step < raw) continue;
        const start = Math.floor(lo / step) * step;
        if (start + step * (n - 1) >= hi - 1e-9) {
          // Centre the data inside the ticks when there is slack.
          const slack = Math.floor((start + step * (n - 1) - hi) / step / 2);
          const s0 = start - Math.max(0, slack) * step;
          return { lo: s0, hi: s0 + step * (n - 1), step: step };
        }
      }
      mag *= 10;
    }
  }

  const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400, 56 * 86400].map((s) => s * 1000);
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  function dateLabel(t) { const d = new Date(t); return d.getDate() + ' ' + MONTHS[d.getMonth()]; }
  function isMidnight(t) { const d = new Date(t); return d.getHours() === 0 && d.getMinutes() === 0; }
  // stamp is a reading's time for the read-out: with the date when the
  // chart spans more than a day.
  function stamp(t, span) { return (span > DAY ? dateLabel(t) + ' ' : '') + clock(t, span <= DAY); }

  // shown is what the chart draws: the live readings or the stored range.
  function shown() { return range === 'live' ? pts : (stored || []); }

  function clock(t, secs) {
    const d = new Date(t);
    const p = (v) => String(v).padStart(2, '0');
    return p(d.getHours()) + ':' + p(d.getMinutes()) + (secs ? ':' + p(d.getSeconds()) : '');
  }

  let geo = null; // last drawn geometry, for the pointer read-out

  function draw() {
    const svg = el.svg;
    const W = Math.max(260, Math.round(el.chart.clientWidth || 600));
    const phone = W < 520;
    const H = phone ? 220 : 290;
    const m = { l: phone ? 36 : 44, r: phone ? 36 : 44, t: 14, b: 26 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('width', W);
    svg.setAttribute('height', H);
    while (svg.lastChild) svg.removeChild(svg.lastChild);
    const P = shown();
    svg.dataset.points = String(P.length);
    svg.dataset.range = range;
    geo = null;

    if (P.length < 2) {
      el.desc = node(svg, 'title', { id: 'chart-desc' }, 'No readings yet');
      const msg = range === 'live' ? 'waiting for readings…' : stored === null ? 'loading…' : 'no readings stored in this range';
      node(svg, 'text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, msg);
      return;
    }

    const live = range === 'live';
    const t0 = live ? P[0].t : storedFrom, t1 = live ? Math.max(P[P.length - 1].t, t0 + 10000) : storedTo;
    let cl = Infinity, ch = -Infinity, hl = Infinity, hh = -Infinity;
    for (const p of P) {
      const c0 = toUnit(p.c0 === undefined ? p.c : p.c0), c1 = toUnit(p.c1 === undefined ? p.c : p.c1);
      const h0 = p.h0 === undefined ? p.h : p.h0, h1 = p.h1 === undefined ? p.h : p.h1;
      if (c0 < cl) cl = c0;
      if (c1 > ch) ch = c1;
      if (h0 < hl) hl = h0;
      if (h1 > hh) hh = h1;
    }
    // Both axes share the row count; pick the one that leaves the least
    // empty band on the worse of the two, so neither line sits squashed.
    let rows = 0, ys = null, yh = null, best = Infinity;
    for (const n of phone ? [4, 5] : [5, 4, 6]) {
      const a = scale(cl, ch, n, unit === 'F' ? 1.8 : 1), b = scale(hl, hh, n, 4);
      const waste = Math.max(1 - (ch - cl) / (a.hi - a.lo), 1 - (hh - hl) / (b.hi - b.lo));
      if (waste < best - 0.05) { best = waste; rows = n; ys = a; yh = b; }
    }
    const X = (t) => m.l + (t - t0) / (t1 - t0) * pw;
    const YT = (v) => m.t + (ys.hi - v) / (ys.hi - ys.lo) * ph;
    const YH = (v) => m.t + (yh.hi - v) / (yh.hi - yh.lo) * ph;

    el.desc = node(svg, 'title', { id: 'chart-desc' },
      'Chart of the last ' + duration(t1 - t0) + ': temperature between ' + fmt1(cl) + ' and ' + fmt1(ch) + ' ' + unitSym() +
      ', humidity between ' + fmt1(hl) + ' and ' + fmt1(hh) + ' %.');

    // Grid and the two value axes.
    const dec = (s) => (s.step < 1 ? 1 : 0);
    for (let i = 0; i < rows; i++) {
      const y = Math.round(m.t + i / (rows - 1) * ph) + 0.5;
      node(svg, 'line', { x1: m.l, x2: W - m.r, y1: y, y2: y, class: i === rows - 1 ? 'base' : 'grid' });
      const tv = ys.hi - i * ys.step, hv = yh.hi - i * yh.step;
      node(svg, 'text', { x: m.l - 6, y: y + 4, 'text-anchor': 'end', class: 'ax-t' }, tv.toFixed(dec(ys)) + '°');
      node(svg, 'text', { x: W - m.r + 6, y: y + 4, 'text-anchor': 'start', class: 'ax-h' }, hv.toFixed(dec(yh)) + '%');
    }

    // Time axis: the finest round step that leaves room for each label
    // (HH:MM:SS needs ~75 px, HH:MM and dates ~55 px). Steps of a day or
    // more are labelled with dates, and so is midnight on shorter steps.
    let ts = TIME_STEPS[TIME_STEPS.length - 1];
    for (const s of TIME_STEPS) {
      if ((t1 - t0) / s <= pw / (s < 60000 ? 75 : 55)) { ts = s; break; }
    }
    const tzOff = new Date(t0).getTimezoneOffset() * 60000;
    for (let t = Math.ceil((t0 - tzOff) / ts) * ts + tzOff; t <= t1; t += ts) {
      const x = Math.round(X(t)) + 0.5;
      const label = ts >= DAY || (t1 - t0 > 12 * 3600000 && isMidnight(t)) ? dateLabel(t) : clock(t, ts < 60000);
      node(svg, 'line', { x1: x, x2: x, y1: H - m.b, y2: H - m.b + 4, class: 'base' });
      node(svg, 'text', { x: x, y: H - m.b + 17, 'text-anchor': 'middle' }, label);
    }

    // Lines: averaged into one point per ~1.5 px so thousands of readings
    // stay cheap, and broken where readings are missing (daemon restarted,
    // sensor failing) rather than drawn across the gap.
    const gap = Math.max(10000, 5 * period(), 2.5 * (live ? 0 : storedStep));
    const bucket = (t1 - t0) / (pw / 1.5);
    const series = [];
    let cur = null, prevT = -Infinity;
    const lo = (p, k) => (p[k + '0'] === undefined ? p[k] : p[k + '0']);
    const hi = (p, k) => (p[k + '1'] === undefined ? p[k] : p[k + '1']);
    for (const p of P) {
      if (p.t - prevT > gap) { cur = []; series.push(cur); }
      prevT = p.t;
      const last = cur[cur.length - 1];
      if (last && p.t - last.t0 < bucket) {
        last.n++; last.c += p.c; last.h += p.h; last.t = p.t;
        last.c0 = Math.min(last.c0, lo(p, 'c')); last.c1 = Math.max(last.c1, hi(p, 'c'));
        last.h0 = Math.min(last.h0, lo(p, 'h')); last.h1 = Math.max(last.h1, hi(p, 'h'));
      } else {
        cur.push({ t0: p.t, t: p.t, c: p.c, h: p.h, n: 1, c0: lo(p, 'c'), c1: hi(p, 'c'), h0: lo(p, 'h'), h1: hi(p, 'h') });
      }
    }
    svg.dataset.segments = String(series.length); // pieces the line is broken into at gaps
    // Rolled-up ranges: a band from each step's minimum to its maximum.
    if (!live && storedStep > 0) {
      let bT = '', bH = '';
      for (const s of series) {
        const xs = s.map((b) => X((b.t0 + b.t) / 2).toFixed(1));
        const fwd = (f) => s.map((b, i) => (i ? 'L' : 'M') + xs[i] + ',' + f(b).toFixed(1)).join('');
        const back = (f) => s.map((b, i) => 'L' + xs[i] + ',' + f(b).toFixed(1)).reverse().join('');
        bT += fwd((b) => YT(toUnit(b.c1))) + back((b) => YT(toUnit(b.c0))) + 'Z';
        bH += fwd((b) => YH(b.h1)) + back((b) => YH(b.h0)) + 'Z';
      }
      node(svg, 'path', { d: bH, class: 'band-h', 'data-band': 'humidity' });
      node(svg, 'path', { d: bT, class: 'band-t', 'data-band': 'temperature' });
    }
    let dT = '', dH = '', area = '';
    const base = H - m.b;
    for (const s of series) {
      let segT = '', segH = '';
      s.forEach((b, i) => {
        const x = X((b.t0 + b.t) / 2).toFixed(1);
        segT += (i ? 'L' : 'M') + x + ',' + YT(toUnit(b.c / b.n)).toFixed(1);
        segH += (i ? 'L' : 'M') + x + ',' + YH(b.h / b.n).toFixed(1);
      });
      if (s.length === 1) { segT += 'h0.1'; segH += 'h0.1'; }
      const xa = X((s[0].t0 + s[0].t) / 2).toFixed(1), xb = X((s[s.length - 1].t0 + s[s.length - 1].t) / 2).toFixed(1);
      area += segT + 'L' + xb + ',' + base + 'L' + xa + ',' + base + 'Z';
      dT += segT;
      dH += segH;
    }
    node(svg, 'path', { d: area, class: 'area-t' });
    node(svg, 'path', { d: dH, class: 'ln ln-h', 'data-series': 'humidity' });
    node(svg, 'path', { d: dT, class: 'ln ln-t', 'data-series': 'temperature' });
    const lp = P[P.length - 1];
    node(svg, 'circle', { cx: X(lp.t), cy: YH(lp.h), r: 4, class: 'dot-h' });
    node(svg, 'circle', { cx: X(lp.t), cy: YT(toUnit(lp.c)), r: 4, class: 'dot-t' });

    geo = { W: W, H: H, m: m, t0: t0, t1: t1, X: X, YT: YT, YH: YH, P: P };
    if (pointerX !== null) showTip(pointerX);
  }

  // Pointer read-out: the reading nearest the pointer, with its time.
  let pointerX = null, tip = null;
  function showTip(clientX) {
    if (tip) { tip.remove(); tip = null; }
    if (clientX === null || !geo || !geo.P.length) return;
    const pts = geo.P;
    const r = el.svg.getBoundingClientRect();
    const x = (clientX - r.left) * geo.W / r.width;
    if (x < geo.m.l || x > geo.W - geo.m.r) return;
    const t = geo.t0 + (x - geo.m.l) / (geo.W - geo.m.l - geo.m.r) * (geo.t1 - geo.t0);
    let lo = 0, hi = pts.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (pts[mid].t < t) lo = mid; else hi = mid; }
    const p = Math.abs(pts[lo].t - t) < Math.abs(pts[hi].t - t) ? pts[lo] : pts[hi];
    const px = geo.X(p.t);
    tip = node(el.svg, 'g', { class: 'tip', 'aria-hidden': 'true' });
    node(tip, 'line', { x1: px, x2: px, y1: geo.m.t, y2: geo.H - geo.m.b, class: 'cross' });
    node(tip, 'circle', { cx: px, cy: geo.YH(p.h), r: 4, class: 'dot-h' });
    node(tip, 'circle', { cx: px, cy: geo.YT(toUnit(p.c)), r: 4, class: 'dot-t' });
    const label = stamp(p.t, geo.t1 - geo.t0) + '  ' + fmt1(toUnit(p.c)) + ' ' + unitSym() + '  ' + fmt1(p.h) + ' %';
    const w = label.length * 7 + 16;
    const bx = Math.min(Math.max(px - w / 2, geo.m.l), geo.W - geo.m.r - w);
    node(tip, 'rect', { x: bx, y: geo.m.t, width: w, height: 22, rx: 6 });
    node(tip, 'text', { x: bx + w / 2, y: geo.m.t + 15.5, 'text-anchor': 'middle' }, label);
  }
  el.svg.addEventListener('pointermove', (e) => { pointerX = e.clientX; showTip(pointerX); });
  el.svg.addEventListener('pointerleave', () => { pointerX = null; showTip(null); });

  if (window.ResizeObserver) new ResizeObserver(drawSoon).observe(el.chart);
  else window.addEventListener('resize', drawSoon);

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
    if (el.conn.dataset.state === s) return;
    el.conn.dataset.state = s;
    el.connText.textContent = s === 'live' ? 'live'
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
  // The owner token is kept where the update panel keeps it.
  const OWNER_KEY = 'sensord.ownerToken';
  $('cb-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('cb-owner'), status = $('cb-status');
    if (input.value) { try { localStorage.setItem(OWNER_KEY, input.value); } catch (e) { /* private mode */ } }
    let token = '';
    try { token = localStorage.getItem(OWNER_KEY) || ''; } catch (e) { token = input.value; }
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
        try { localStorage.removeItem(OWNER_KEY); } catch (e) { /* private mode */ }
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
    if (cls) {
      const b = document.createElement('span');
      b.className = 'badge ' + cls;
      b.textContent = text;
      dd.appendChild(b);
    } else {
      dd.appendChild(document.createTextNode(text));
    }
    for (const line of [sub, sub2]) {
      if (!line) continue;
      const s = document.createElement('small');
      s.textContent = line;
      dd.appendChild(s);
    }
  }

  function ago(ms) {
    if (!ms) return '';
    return duration(Date.now() + skew - ms) + ' ago';
  }

  function renderHealth() {
    const h = health || {};
    if (h.status === 'ok') set('h-status', 'OK', '', 'ok');
    else if (h.status === 'starting') set('h-status', 'Starting', 'waiting for the first good reading', 'warn');
    else if (h.status === 'unhealthy') set('h-status', 'Unhealthy', h.reason || '', 'bad');
    else if (h.status === 'degraded') set('h-status', 'Degraded', h.reason || '', 'warn');
    else if (h.status === 'unreachable') set('h-status', 'Unreachable', '/healthz did not answer', 'bad');
    else set('h-status', '–');

    const s = h.sensor;
    if (s && s.window_reads > 0) {
      // The verdict's window, so the panel and the banner agree.
      const ok = s.window_reads - (s.window_failed || 0);
      const pct = ok * 100 / s.window_reads;
      const mins = Math.round((s.window_seconds || 0) / 60);
      set('h-rate', (pct >= 99.95 && pct < 100 ? '99.9' : pct.toFixed(1)) + ' %',
        ok.toLocaleString() + ' of ' + Number(s.window_reads).toLocaleString() + ' reads in the last ' +
        (mins >= 2 ? mins + ' minutes' : Math.round(s.window_seconds || 0) + ' s'), '', s.name);
    } else if (s && typeof s.success_rate === 'number') {
      const pct = s.success_rate * 100;
      set('h-rate', (pct >= 99.95 && pct < 100 ? '99.9' : pct.toFixed(1)) + ' %',
        Number(s.successes || 0).toLocaleString() + ' of ' + Number(s.reads || 0).toLocaleString() + ' reads', '', s.name);
    } else set('h-rate', '–');
    const kinds = s && s.errors ? Object.keys(s.errors).filter((k) => s.errors[k] > 0) : [];
    const counts = kinds.map((k) => k.replace('_', ' ') + ' ' + Number(s.errors[k]).toLocaleString()).join(' · ');
    if (s && s.last_error) set('h-error', s.last_error, ago(s.last_error_time), '', counts);
    else set('h-error', s ? 'none' : '–');

    const c = h.clients;
    if (c && typeof c === 'object') {
      let n = 0;
      const parts = [];
      const order = ['dashboard', 'sensors', 'api'];
      const keys = Object.keys(c).sort((a, b) => (order.indexOf(a) + 1 || 9) - (order.indexOf(b) + 1 || 9));
      for (const k of keys) { n += Number(c[k]) || 0; parts.push(k + ' ' + c[k]); }
      set('h-clients', String(n), parts.join(' · '));
    } else set('h-clients', '–');

    const x = h.extra || {};
    const dev = x.device || {};
    renderSensorBanner(s);
    renderClockBanner(h.clock);
    if (h.name) {
      $('name').textContent = h.name;
      if (!latest) document.title = h.name;
    }
    $('h-cpu-label').textContent = dev.cores ? 'CPU load (1 min, ' + dev.cores + (dev.cores === 1 ? ' core)' : ' cores)') : 'CPU load (1 min)';
    set('h-cpu', sys && isFinite(sys.cpu) ? Number(sys.cpu).toFixed(2) : '–');
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
    const hi = x.history;
    if (hi) {
      if (hi.enabled && hi.failing_since) {
        set('h-history', 'cannot be written', hi.error || '', 'bad', (hi.fix || '') + (hi.dropped ? ' · ' + Number(hi.dropped).toLocaleString() + ' readings lost' : ''));
      } else if (hi.enabled) set('h-history', hi.path ? 'on disk' : 'in memory only', (hi.path || 'lost at restart; set -history-dir') + (hi.error ? ' · ' + hi.error : ''), '', Number(hi.written || 0).toLocaleString() + ' readings written' + (hi.start ? ' since ' + new Date(hi.start).toLocaleDateString() : ''));
      else set('h-history', 'unavailable', hi.error || '', 'bad');
    }
    const cal = x.calibration || {};
    const offs = [];
    if (cal.temperature_offset) offs.push('temperature ' + (cal.temperature_offset > 0 ? '+' : '') + cal.temperature_offset + ' °C');
    if (cal.humidity_offset) offs.push('humidity ' + (cal.humidity_offset > 0 ? '+' : '') + cal.humidity_offset + ' %');
    $('calib').hidden = !offs.length;
    $('calib').textContent = offs.length ? 'calibrated: ' + offs.join(', ') : '';
    set('h-mem', sys && isFinite(sys.memory) ? Number(sys.memory).toFixed(1) + ' %' : '–');
    set('h-uptime', isFinite(h.uptime) ? duration(h.uptime * 1000) : '–');
    set('h-version', h.version || '–');
    // Client mode: the daemon also pushes readings to a remote server.
    const up = h.client;
    $('uplink').hidden = !up;
    if (up) set('h-uplink', up.state || '–', (up.url || '') + (up.reason ? ' · ' + up.reason : ''), up.state === 'connected' ? 'ok' : 'bad');

    const warn = Array.isArray(h.warnings) ? h.warnings : [];
    const list = $('warning-list');
    list.textContent = '';
    for (const w of warn) {
      const li = document.createElement('li');
      li.textContent = String(w);
      list.appendChild(li);
    }
    $('warnings').hidden = warn.length === 0;
  }

  // ---- ranges ----
  let storedGen = 0, storedTimer = 0;

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
    const el = $('history-start');
    const from = range === 'live' ? 0 : Date.now() + skew - RANGES[range].span;
    el.hidden = !historyStart || range === 'live' || historyStart <= from;
    if (!el.hidden) el.textContent = 'History starts ' + new Date(historyStart).toLocaleString() + ': nothing is stored before it.';
  }

  async function loadStored() {
    clearTimeout(storedTimer);
    if (range === 'live') return;
    const gen = ++storedGen;
    const u = rangeQuery('');
    clipToStart(u);
    try {
      const res = await fetch(u.href, { cache: 'no-store' });
      if (gen !== storedGen) return;
      if (res.status === 401) { showAuth(true); return; }
      const hs = Number(res.headers.get('History-Start'));
      if (hs > 0 && hs !== historyStart) {
        historyStart = hs;
        noteStart();
        const v = rangeQuery('');
        clipToStart(v);
        const same = (k) => v.searchParams.get(k) === u.searchParams.get(k);
        if (!same('from') || !same('step')) { loadStored(); return; } // the range starts later than asked
      }
      const body = await res.json();
      if (gen !== storedGen) return;
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
    } catch (e) {
      // Unreachable: keep what is drawn; the next refresh retries.
    } finally {
      if (gen === storedGen) storedTimer = setTimeout(loadStored, RANGE_REFRESH);
    }
  }

  function setRange(r) {
    range = RANGES[r] ? r : 'live';
    saveRange(range);
    for (const b of document.querySelectorAll('.ranges button')) b.setAttribute('aria-pressed', String(b.dataset.range === range));
    stored = null;
    storedGen++;
    clearTimeout(storedTimer);
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
