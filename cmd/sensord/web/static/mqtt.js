// sensord dashboard: the MQTT link's state and a panel of every source and
// metric seen on -mqtt-subscribe (the {"type":"mqtt",...} messages of WS
// ws/dashboard) with its latest value and age, so one Pi's page shows the
// whole house. Separate from app.js (which owns the heading and the device's
// name); both take the socket's messages and the healthz polls from hub.js.
(() => {
  'use strict';
  const AGE_EVERY = 1000;       // ms between age refreshes
  const MAX_ROWS = 500;         // sources x metrics kept: a flood of topics must not grow the page without end
  // Units of the metrics sensord itself publishes (and other devices that
  // use the same names): a bare "21.4" says nothing about what it is.
  const UNITS = window.format.UNITS;
  const { el } = window.dom;

  // The panel, built here so index.html only loads this file.
  const panel = el('section', 'card mqtt');
  panel.id = 'mqtt';
  panel.hidden = true;
  panel.setAttribute('aria-labelledby', 'mqtt-title');
  const title = el('h2', '', 'MQTT');
  title.id = 'mqtt-title';
  const link = el('p', 'mqtt-link');
  link.id = 'mqtt-link';
  link.setAttribute('role', 'status');
  const table = el('table', 'mqtt-table');
  table.id = 'mqtt-table';
  const head = table.createTHead().insertRow();
  for (const h of ['Source', 'Metric', 'Value', 'Age']) head.appendChild(el('th', '', h));
  const body = table.createTBody();
  // A narrow screen scrolls the table sideways rather than breaking its
  // words every few letters.
  const scroll = el('div', 'mqtt-scroll');
  scroll.appendChild(table);
  const empty = el('p', 'mqtt-empty', 'No messages on the subscription yet.');
  panel.append(title, link, scroll, empty);

  const rows = new Map(); // "source\u0000metric" -> {tr, value, age, ts}; metric as metricOf gives it

  function fmtAge(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    return Math.floor(s / 3600) + ' h';
  }
  function refreshAges() {
    const now = Date.now();
    for (const r of rows.values()) r.age.textContent = fmtAge(now - r.ts);
  }

  // metricOf is the row's metric: the topic's third level, or for a topic
  // deeper than source/metric (the hub message then carries the whole
  // topic) every level after the source, so sensors/x/temperature/raw gets
  // its own row, "temperature/raw", and never replaces x's temperature.
  function metricOf(m) {
    if (typeof m.topic === 'string') return m.topic.split('/').slice(2).join('/');
    return m.metric === undefined ? '' : String(m.metric);
  }

  function onMessage(m) {
    const source = m.source === undefined ? '' : String(m.source);
    const metric = metricOf(m);
    const key = source + '\u0000' + metric;
    let r = rows.get(key);
    if (!r) {
      if (rows.size >= MAX_ROWS) {
        // Forget the row updated longest ago.
        let oldKey, oldTs = Infinity;
        for (const [k, v] of rows) if (v.ts < oldTs) { oldTs = v.ts; oldKey = k; }
        rows.get(oldKey).tr.remove();
        rows.delete(oldKey);
      }
      const tr = el('tr');
      tr.dataset.source = source;
      tr.dataset.metric = metric;
      const cells = [el('td', '', source || '–'), el('td', '', metric || '–'), el('td', 'v'), el('td', 'age')];
      tr.append(...cells);
      // Keep rows sorted by source, then metric.
      let before = null;
      for (const other of body.rows) {
        const o = other.dataset;
        if (o.source > source || (o.source === source && o.metric > metric)) { before = other; break; }
      }
      body.insertBefore(tr, before);
      r = { tr, value: cells[2], age: cells[3], ts: 0 };
      rows.set(key, r);
    }
    const ts = Number(m.timestamp) || Date.now();
    if (ts < r.ts) return; // an older message (a replayed backlog) does not replace a newer value
    r.ts = ts;
    const unit = UNITS[metric];
    const value = String(m.value);
    r.value.textContent = unit && value.trim() !== '' && isFinite(Number(value)) ? value + ' ' + unit : value;
    r.age.textContent = fmtAge(Date.now() - ts);
    empty.hidden = true;
    panel.hidden = false;
  }

  function showLink(h) {
    const q = h.mqtt;
    if (!q) { link.textContent = ''; return; }
    panel.hidden = false;
    let text = q.broker + (q.user ? ' as ' + q.user : '') + ': ' + q.state;
    if (q.reason) text += ' (' + q.reason + ')';
    if (q.queued) text += '; ' + q.queued + ' readings waiting';
    if (q.dropped) text += '; ' + q.dropped + ' dropped while down';
    link.textContent = text;
    link.dataset.state = q.state;
    empty.textContent = q.subscribe ? 'No messages on ' + q.subscribe + ' yet.' : 'Not subscribed (-mqtt-subscribe is empty).';
  }

  // app.js shows an unreachable daemon or a missing token; the panel only
  // follows answers that carry a body.
  window.sensord.on('health', (h, res) => { if (res && (res.ok || res.status === 503) && h) showLink(h); });
  window.sensord.on('frame', (m) => { if (m && m.type === 'mqtt') onMessage(m); });

  function init() {
    const main = document.querySelector('main');
    if (main) main.appendChild(panel);
    setInterval(refreshAges, AGE_EVERY);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
