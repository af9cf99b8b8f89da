// sensord dashboard: the A/B updater in the device panel. Rows for the
// running slot and version and the last update's outcome (GET api/update,
// which reads what the privileged updater writes), and a form that uploads
// a signed bundle (POST api/update); sensord spools it and the updater
// installs it and reboots into it on trial. Off the A/B image
// (available: false) nothing is shown.
//
// Uploading needs the owner token (-owner-token): the form asks for it the
// first time, keeps it in this browser (hub.js) and sends it as
// Authorization: Bearer; a refused token is forgotten and asked again.
// With no owner token configured (writable: false) the panel says how to
// turn writing on instead of offering the upload.
//
// Before an upload the form shows what would decide its trial, given the
// device's state now (api/update's forecast, computed by sensord; the page
// only shows it). When the forecast carries a warning (the upload would be
// refused, or its trial could not commit), the first press of the button
// shows the warning and sends nothing; the button becomes "Upload anyway"
// and only a second press uploads.
(() => {
  'use strict';
  const POLL_EVERY = 10000; // ms between api/update polls
  const OFF_TEXT = 'Writing is off: updates need an owner token. Set SENSORD_OWNER_TOKEN in sensord.conf (or start sensord with -owner-token) and restart it.';

  const stored = window.sensord.ownerToken; // hub.js
  const store = window.sensord.keepOwnerToken;

  const url = window.sensord.url; // hub.js
  const { $, el } = window.dom;
  function row(id, label) {
    const div = el('div');
    div.id = id + '-row';
    div.hidden = true;
    const dd = el('dd', 'long', '–');
    dd.id = id;
    div.append(el('dt', '', label), dd);
    return div;
  }

  const dl = document.querySelector('section.device dl');
  if (!dl) return;
  const slotRow = row('u-slot', 'Root slot');
  const lastRow = row('u-last', 'Last update');
  dl.append(slotRow, lastRow);

  const form = el('form', 'update-form');
  form.id = 'update-form';
  form.hidden = true;
  const label = el('label', '', 'Update bundle ');
  const file = el('input');
  file.type = 'file';
  file.id = 'update-file';
  file.accept = '.update';
  file.required = true;
  label.appendChild(file);
  const ownerLabel = el('label', 'owner-token', 'Owner token ');
  const owner = el('input');
  owner.type = 'password';
  owner.id = 'owner-token';
  owner.autocomplete = 'current-password';
  ownerLabel.appendChild(owner);
  ownerLabel.hidden = true;
  const BUTTON_TEXT = 'Upload and install';
  const button = el('button', '', BUTTON_TEXT);
  button.type = 'submit';
  const says = el('p', 'update-forecast');
  says.id = 'update-forecast';
  says.hidden = true;
  const warning = el('p', 'banner warn update-warning');
  warning.id = 'update-warning';
  warning.setAttribute('role', 'alert');
  warning.hidden = true;
  const status = el('p', 'update-status');
  status.id = 'update-status';
  status.setAttribute('role', 'status');
  form.append(label, ownerLabel, says, warning, button, status);

  // warned is the forecast warning the owner last saw and pressed past
  // once; a second press with the same warning uploads. A new file or a
  // changed warning asks again.
  let forecastWarning = '';
  let warned = '';
  function unconfirm() {
    warned = '';
    button.textContent = BUTTON_TEXT;
  }
  file.addEventListener('change', unconfirm);
  dl.parentNode.appendChild(form);

  function show(x) {
    if (!x || !x.available) {
      slotRow.hidden = lastRow.hidden = form.hidden = true;
      return;
    }
    slotRow.hidden = false;
    form.hidden = false;
    form.dataset.writable = x.writable ? 'yes' : 'no';
    label.hidden = button.hidden = !x.writable;
    if (!x.writable) {
      ownerLabel.hidden = true;
      status.textContent = OFF_TEXT;
      status.dataset.result = 'off';
    } else if (status.dataset.result === 'off') {
      status.textContent = '';
      delete status.dataset.result;
    }
    let slot = x.slot + ' (' + x.mode + ')';
    if (x.version) slot += ' · version ' + x.version;
    if (x.release) slot += ' (release ' + x.release + ')';
    if (x.trial) slot += ' · slot ' + x.trial + ' boots on trial next';
    $('u-slot').textContent = slot;
    const fc = x.forecast;
    says.hidden = !x.writable || !fc || !fc.says;
    if (fc && fc.says) says.textContent = 'If you upload now: ' + fc.says;
    forecastWarning = (x.writable && fc && fc.warning) || '';
    warning.hidden = !forecastWarning;
    warning.textContent = forecastWarning ? 'Warning: ' + forecastWarning : '';
    if (fc && fc.blocker) warning.dataset.blocker = fc.blocker;
    else delete warning.dataset.blocker;
    if (warned && warned !== forecastWarning) unconfirm();
    const l = x.last;
    lastRow.hidden = !l || !l.outcome;
    if (l && l.outcome) {
      let t = l.outcome;
      if (l.version) t += ': version ' + l.version;
      if (l.slot) t += ' in slot ' + l.slot;
      if (l.rule) t += ' · rule ' + l.rule;
      if (l.detail) t += ' · ' + l.detail;
      if (l.time) t += ' · ' + l.time;
      $('u-last').textContent = t;
      $('u-last').dataset.outcome = l.outcome;
    }
    if (x.pending && !busy) status.textContent = 'An uploaded update is being installed; the device reboots into it.';
    if (x.error) status.textContent = x.error;
  }
  // hub.js polls; an unreachable device (rebooting, network down) is
  // asked again at the next poll.
  const poll = window.sensord.poll('api/update', POLL_EVERY, (body, res) => { if (res && res.ok && body) show(body); });

  let busy = false;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = file.files && file.files[0];
    if (!f || busy) return;
    if (forecastWarning && warned !== forecastWarning) {
      warned = forecastWarning;
      button.textContent = 'Upload anyway';
      status.textContent = 'Not uploaded: read the warning above. Press "Upload anyway" to upload regardless.';
      status.dataset.result = 'warned';
      return;
    }
    if (owner.value) store(owner.value);
    const token = stored();
    if (!token) {
      ownerLabel.hidden = false;
      owner.required = true;
      owner.focus();
      status.textContent = 'Enter the owner token (the one set with SENSORD_OWNER_TOKEN or -owner-token); this browser keeps it.';
      return;
    }
    busy = true;
    button.disabled = true;
    status.textContent = 'Uploading ' + f.name + ' (' + Math.round(f.size / 1048576) + ' MiB) and checking its signature…';
    try {
      const res = await fetch(url('api/update'), {
        method: 'POST', body: f, cache: 'no-store',
        headers: { 'Content-Type': 'application/octet-stream', 'Authorization': 'Bearer ' + token },
      });
      let body = {};
      try { body = await res.json(); } catch (e) { /* not JSON */ }
      status.textContent = res.ok ? 'Accepted: ' + (body.status || '') : 'Refused: ' + (body.error || res.status + ' ' + res.statusText);
      status.dataset.result = res.ok ? 'accepted' : 'refused';
      if (res.status === 401) {
        // A wrong or changed owner token: forget it and ask again.
        store('');
        owner.value = '';
        ownerLabel.hidden = false;
        owner.required = true;
        status.textContent = 'Wrong owner token: enter it again. ' + (body.error || '');
      } else if (res.status === 403) {
        status.dataset.result = 'off';
      } else {
        ownerLabel.hidden = true;
        owner.required = false;
        owner.value = '';
      }
    } catch (e) {
      status.textContent = 'Upload failed: ' + e;
      status.dataset.result = 'failed';
    }
    busy = false;
    button.disabled = false;
    unconfirm();
    poll.now();
  });

  poll.now();
})();
