// sensord dashboard: the settings page (day two without pulling the card).
// GET api/settings lists sensord.conf's settings with the values sensord
// runs with (a secret only as set or not) and the last apply's outcome;
// the owner changes them (POST api/settings), resets them to the defaults
// (POST api/settings/reset, keeping or clearing the history), downloads
// them (api/settings/download, with the secrets on the owner's request)
// and restores a download (POST api/settings/upload). sensord checks a
// change with its own rules and answers a bad value with its own one-line
// words; a good one goes to the root helper, which writes sensord.conf
// and restarts sensord, so the page waits for the outcome and reloads
// the values.
//
// Without the owner token in this browser the page is read-only: the
// fields are disabled until the owner unlocks them (the token is the one
// every writing panel keeps, hub.js; a refused one is forgotten).
(() => {
  'use strict';
  const POLL_EVERY = 30000; // ms between api/settings polls: settings change seldom
  const APPLY_POLL = 2000; // ms between polls while a change is being applied
  const APPLY_FOR = 120000; // ms at most of those: a restart under emulation takes tens of seconds
  // The settings on the page, grouped as a person looks for them; every
  // other one stays in sensord.conf and in the download.
  const GROUPS = [
    ['Device', ['SENSORD_NAME', 'HOSTNAME']],
    ['Wi-Fi', ['WIFI_COUNTRY', 'WIFI_SSID', 'WIFI_PASSPHRASE']],
    ['MQTT', ['SENSORD_MQTT_URL', 'SENSORD_MQTT_USER', 'SENSORD_MQTT_PASSWORD', 'SENSORD_MQTT_PREFIX', 'SENSORD_MQTT_DISCOVERY']],
    ['Access tokens', ['SENSORD_TOKEN', 'SENSORD_OWNER_TOKEN']],
    ['Calibration', ['SENSORD_TEMP_OFFSET', 'SENSORD_HUMIDITY_OFFSET']],
    ['Alerts', ['SENSORD_ALERT', 'SENSORD_ALERT_WEBHOOK']],
    ['SSH', ['SSH_PUBKEY', 'SSH_PUBKEY_2']],
  ];
  const IMAGER_NOTE = 'Flashed with Raspberry Pi Imager? Its host name, Wi-Fi, SSH keys and time zone were carried into sensord.conf once at the first boot. ' +
    'Its user name and password are not used: SSH logs in as root with the keys above only, and changes here need the owner token.';

  const stored = window.sensord.ownerToken; // hub.js
  const store = window.sensord.keepOwnerToken;

  const url = window.sensord.url; // hub.js
  const { $, el } = window.dom;
  const anchor = $('settings-panel');
  if (!anchor) return;

  const card = el('section', 'card settings');
  card.setAttribute('aria-labelledby', 'settings-title');
  const title = el('h2', '', 'Settings');
  title.id = 'settings-title';
  const mode = el('p', 'settings-mode');
  mode.id = 'settings-mode';
  const form = el('form', 'settings-form');
  form.id = 'settings-form';
  const fields = el('div', 'settings-fields');
  const ownerLabel = el('label', 'owner-token', 'Owner token ');
  const owner = el('input');
  owner.type = 'password';
  owner.id = 'settings-owner';
  owner.autocomplete = 'current-password';
  ownerLabel.appendChild(owner);
  const unlock = el('button', '', 'Unlock');
  unlock.type = 'button';
  unlock.id = 'settings-unlock';
  const save = el('button', '', 'Save and restart');
  save.type = 'submit';
  save.id = 'settings-save';
  const status = el('p', 'settings-status');
  status.id = 'settings-status';
  status.setAttribute('role', 'status');
  const last = el('p', 'settings-last');
  last.id = 'settings-last';

  // Reset, download, restore.
  const tools = el('div', 'settings-tools');
  const keep = el('label', '', ' keep the stored readings');
  const keepBox = el('input');
  keepBox.type = 'checkbox';
  keepBox.id = 'settings-keep-history';
  keepBox.checked = true;
  keep.prepend(keepBox);
  const reset = el('button', '', 'Reset to defaults');
  reset.type = 'button';
  reset.id = 'settings-reset';
  const download = el('a', '', 'Download settings');
  download.id = 'settings-download';
  download.href = url('api/settings/download');
  download.setAttribute('download', 'sensord-no-secrets.conf');
  const downloadAll = el('button', '', 'Download with secrets');
  downloadAll.type = 'button';
  downloadAll.id = 'settings-download-secrets';
  const uploadLabel = el('label', '', 'Restore from a file ');
  const upload = el('input');
  upload.type = 'file';
  upload.id = 'settings-upload';
  upload.accept = '.conf,text/plain';
  uploadLabel.appendChild(upload);
  const restore = el('button', '', 'Restore');
  restore.type = 'button';
  restore.id = 'settings-restore';
  tools.append(reset, keep, download, downloadAll, uploadLabel, restore);
  const resetNote = el('p', 'settings-note', 'A reset sets every sensord setting back to its default; Wi-Fi, host name, SSH keys and the owner token stay, so the appliance stays reachable and yours.');
  const imager = el('p', 'settings-note', IMAGER_NOTE);
  imager.id = 'settings-imager';
  // What the first boot's import took and left, as the journal has it.
  const imported = el('ul', 'settings-note');
  imported.id = 'settings-imager-report';
  imported.hidden = true;

  form.append(fields, ownerLabel, unlock, save, status);
  card.append(title, mode, form, last, tools, resetNote, imager, imported);
  anchor.appendChild(card);

  const inputs = {}; // name -> {input, v: the setting as GET gave it}
  let info = null;
  let shownSig = ''; // the settings the fields were last filled from
  let dirty = false; // the owner has typed since
  let waiting = false; // a change was accepted: wait for its outcome
  let sentID = ''; // the accepted request's id, which its outcome carries
  let applying = 0; // the faster poll's timer while a change applies
  let applyUntil = 0; // when the faster poll gives up
  fields.addEventListener('input', () => { dirty = true; });

  function build(x) {
    const vars = {};
    for (const s of x.sections) for (const v of s.vars) vars[v.name] = v;
    fields.textContent = '';
    for (const [group, names] of GROUPS) {
      const fs = el('fieldset');
      fs.appendChild(el('legend', '', group));
      for (const n of names) {
        const v = vars[n];
        if (!v) continue;
        const label = el('label', 'setting', (v.flag ? v.flag : n) + ' ');
        const input = el('input');
        input.id = 's-' + n;
        input.name = n;
        input.title = v.doc;
        if (v.secret) {
          input.type = 'password';
          input.autocomplete = 'off';
          input.placeholder = v.set ? (v.value ? v.value + ' (type to replace)' : 'set (type to replace)') : 'not set';
          input.value = '';
        } else {
          input.type = 'text';
          input.placeholder = v.default ? 'default: ' + v.default : '';
          input.value = v.set ? v.value : '';
        }
        label.appendChild(input);
        fs.appendChild(label);
        inputs[n] = { input, v };
      }
      fields.appendChild(fs);
    }
  }

  function unlocked() { return info && info.writable && stored() !== ''; }

  function lock() {
    const w = unlocked();
    for (const n in inputs) inputs[n].input.disabled = !w;
    form.dataset.readonly = w ? 'no' : 'yes';
    save.hidden = reset.hidden = keep.hidden = downloadAll.hidden = uploadLabel.hidden = restore.hidden = !w;
    ownerLabel.hidden = unlock.hidden = w || !(info && info.writable);
    if (!info) return;
    if (!info.writable) mode.textContent = 'Read-only: writing is off. Set SENSORD_OWNER_TOKEN in sensord.conf to change settings here.';
    else if (!w) mode.textContent = 'Read-only: enter the owner token to change settings.';
    else if (!info.available) mode.textContent = 'This sensord runs without the image\'s settings helper: it checks changes but cannot write sensord.conf.';
    else mode.textContent = 'Changes are checked with sensord\'s own rules, written to sensord.conf, and sensord restarts to use them.';
  }

  function showLast(l) {
    if (!l) { last.textContent = ''; return; }
    let t = 'Last change (' + (l.action || 'change') + '): ' + l.outcome;
    if (l.changed && l.changed.length) t += ' · ' + l.changed.join(', ');
    if (l.detail) t += ' · ' + l.detail;
    if (l.time) t += ' · ' + new Date(l.time).toLocaleString();
    last.textContent = t;
    last.dataset.outcome = l.outcome;
  }

  function show(x) {
    info = x;
    // The change is done when its own outcome is in: until then sensord
    // may show an earlier change's (another tab's, or one made over SSH).
    // The helper records it once sensord has restarted with the change.
    const l = x.last;
    if (waiting && l && l.id === sentID) {
      waiting = false;
      shownSig = ''; // the fields hold what was typed: show what sensord runs with
      status.textContent = l.outcome === 'applied' ? 'Applied: sensord restarted with the new settings.' : 'Not applied: ' + (l.detail || l.outcome);
      status.dataset.result = l.outcome;
    }
    if (applying && (!waiting || Date.now() > applyUntil)) {
      clearInterval(applying);
      applying = 0;
      if (waiting) status.textContent = 'No outcome yet after ' + APPLY_FOR / 60000 + ' minutes; this page keeps checking.';
    }
    // Refill the fields when what sensord runs with changed, never under
    // the owner's fingers nor while a change is on its way.
    const sig = JSON.stringify(x.sections);
    if (sig !== shownSig && !dirty && !waiting) {
      build(x);
      shownSig = sig;
    }
    showLast(l);
    imported.hidden = !(x.imager && x.imager.length);
    if (!imported.hidden && imported.childElementCount !== x.imager.length) {
      imported.textContent = '';
      for (const l of x.imager) imported.appendChild(el('li', '', 'Raspberry Pi Imager, ' + l));
    }
    form.dataset.loaded = 'yes';
    lock();
  }
  const poll = window.sensord.poll('api/settings', POLL_EVERY, (body, res) => { if (res && res.ok && body) show(body); });

  async function send(path, body, ctype) {
    const token = stored();
    status.textContent = 'Checking…';
    delete status.dataset.result;
    let res, ans = {};
    try {
      res = await fetch(url(path), {
        method: 'POST', body, cache: 'no-store',
        headers: { 'Content-Type': ctype, 'Authorization': 'Bearer ' + token },
      });
      try { ans = await res.json(); } catch (e) { /* not JSON */ }
    } catch (e) {
      status.textContent = 'Could not reach sensord: ' + e;
      status.dataset.result = 'failed';
      return;
    }
    if (res.status === 401) {
      store('');
      lock();
      status.textContent = 'Wrong owner token: enter it again. ' + (ans.error || '');
      status.dataset.result = 'refused';
      return;
    }
    if (!res.ok) {
      // sensord's own one-line words.
      status.textContent = ans.error || res.status + ' ' + res.statusText;
      status.dataset.result = 'refused';
      return;
    }
    waiting = true;
    sentID = ans.id || '';
    dirty = false;
    applyUntil = Date.now() + APPLY_FOR;
    clearInterval(applying);
    applying = setInterval(poll.now, APPLY_POLL);
    status.textContent = 'Accepted: ' + (ans.status || '') + '…';
    status.dataset.result = 'accepted';
    poll.now();
  }

  unlock.addEventListener('click', () => {
    if (!owner.value) { owner.focus(); return; }
    store(owner.value);
    owner.value = '';
    lock();
  });

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!unlocked()) return;
    const set = {}, unset = [];
    for (const n in inputs) {
      const { input, v } = inputs[n];
      const now = input.value.trim();
      if (v.secret) {
        if (now !== '') set[n] = now;
      } else if (now !== (v.set ? v.value : '')) {
        if (now === '') unset.push(n); else set[n] = now;
      }
    }
    if (!Object.keys(set).length && !unset.length) {
      status.textContent = 'Nothing changed.';
      return;
    }
    send('api/settings', JSON.stringify({ set, unset }), 'application/json');
  });

  // A reset asks twice: the first click arms it and says what it does.
  reset.addEventListener('click', () => {
    const history = keepBox.checked ? 'keep' : 'clear';
    if (reset.dataset.armed !== history) {
      reset.dataset.armed = history;
      status.textContent = 'Click "Reset to defaults" again to reset every sensord setting to its default; ' +
        (keepBox.checked ? 'the stored readings stay.' : 'the stored readings are deleted.');
      return;
    }
    delete reset.dataset.armed;
    send('api/settings/reset', JSON.stringify({ history }), 'application/json');
  });

  downloadAll.addEventListener('click', async () => {
    const u = new URL(url('api/settings/download'));
    u.searchParams.set('secrets', '1');
    const res = await fetch(u.href, {
      cache: 'no-store', headers: { 'Authorization': 'Bearer ' + stored() },
    });
    if (!res.ok) { status.textContent = 'Download refused: ' + res.status; return; }
    const a = el('a');
    a.href = URL.createObjectURL(await res.blob());
    a.download = 'sensord.conf';
    a.click();
    URL.revokeObjectURL(a.href);
  });

  restore.addEventListener('click', async () => {
    const f = upload.files && upload.files[0];
    if (!f) { upload.focus(); return; }
    send('api/settings/upload', await f.text(), 'text/plain');
  });

  poll.now();
})();
