// sensord dashboard: the active alerts ({"type":"alert",...} messages of
// WS ws/dashboard) at the top of the page, each in words with when it
// started, apart from the sensor banner and the connection badge; and, if
// the person allows it, a browser notification when one is raised. The
// daemon retains every active alert for a socket that (re)opens, so the
// list starts afresh at each open and the replay fills it again: an alert
// cleared while the page was away does not linger.
(() => {
  'use strict';
  const MAX_ALERTS = 64; // shown at once: far more rules than anyone sets
  // Each metric's unit as the page writes it.
  const UNITS = Object.assign({ reading_age: 's' }, window.format.UNITS);
  const WORDS = { temperature: 'Temperature', humidity: 'Humidity', dew_point: 'Dew point', absolute_humidity: 'Absolute humidity' };
  const { el } = window.dom;

  const box = el('section', 'banner bad alerts');
  box.id = 'alerts';
  box.hidden = true;
  box.setAttribute('role', 'region');
  box.setAttribute('aria-labelledby', 'alerts-title');
  const title = el('h2', '', 'Active alerts');
  title.id = 'alerts-title';
  const list = el('ul', 'alert-list');
  list.id = 'alert-list';
  list.setAttribute('aria-live', 'polite');
  const ask = el('button', 'notify', 'Notify me of new alerts');
  ask.type = 'button';
  ask.hidden = true;
  box.append(title, list, ask);

  const active = new Map(); // name -> the raise
  const told = new Set();   // name + timestamp of every raise already notified

  function num(v) { return typeof v === 'number' && isFinite(v) ? String(Math.round(v * 10) / 10) : '?'; }
  function when(ms) {
    const d = new Date(ms);
    const same = d.toDateString() === new Date().toDateString();
    return same ? d.toLocaleTimeString() : d.toLocaleString();
  }

  // words is an alert as a sentence.
  function words(m) {
    const u = UNITS[m.metric] ? ' ' + UNITS[m.metric] : '';
    if (m.name === 'sensor_failing') return 'The sensor is failing: no good reading for ' + num(m.value) + ' s';
    if (m.name === 'no_reading') return 'No reading from the sensor for ' + num(m.value) + ' s';
    const what = WORDS[m.metric] || String(m.metric);
    return m.name + ': ' + what + ' ' + num(m.value) + u + ', past the threshold of ' + num(m.threshold) + u;
  }

  function render() {
    list.textContent = '';
    const all = [...active.values()].sort((a, b) => a.timestamp - b.timestamp);
    for (const m of all) {
      const li = el('li', 'alert');
      li.dataset.name = String(m.name);
      li.append(el('strong', '', words(m)), el('span', 'since', ' since ' + when(m.timestamp)));
      list.append(li);
    }
    box.hidden = all.length === 0;
    ask.hidden = !('Notification' in window) || Notification.permission !== 'default';
  }

  function notify(m) {
    const key = m.name + '\u0000' + m.timestamp;
    if (told.has(key)) return;
    told.add(key);
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      new Notification('sensord alert', { body: words(m), tag: 'sensord-alert-' + m.name });
    } catch (e) { /* some browsers allow notifications only from a service worker */ }
  }

  function onAlert(m) {
    if (typeof m.name !== 'string') return;
    if (m.state === 'raised') {
      if (!active.has(m.name) && active.size >= MAX_ALERTS) return;
      active.set(m.name, m);
      notify(m);
    } else if (m.state === 'cleared') {
      active.delete(m.name);
    }
    render();
  }

  ask.addEventListener('click', () => {
    Notification.requestPermission().then(render, render);
  });

  document.addEventListener('DOMContentLoaded', () => {
    const slot = window.dom.$('alerts-panel');
    if (slot) slot.replaceWith(box);
  });
  window.sensord.on('open', () => { active.clear(); render(); });
  window.sensord.on('frame', (m) => { if (m && m.type === 'alert') onAlert(m); });
})();
