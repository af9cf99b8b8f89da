// sensord dashboard: the history chart, hand-drawn SVG: temperature on the
// left axis, humidity on the right, one shared grid, a time axis, lines
// broken at gaps, a min/max band for rolled-up rows, and a read-out of the
// reading nearest the pointer. It draws what app.js hands it and fetches
// nothing.
//
//   const c = chart.create(box, svg, data)
//   c.draw()       draw now
//   c.drawSoon()   draw at the next animation frame (many calls, one draw)
//
// data() returns what to draw:
//   points  [{t (ms), c (°C), h (%RH), c0, c1, h0, h1 (a row's min/max, optional)}], sorted by t
//   from, to  the span shown (ms); without them, the points' own span (at least 10 s)
//   step    ms per stored row (0: raw readings): a band shows each row's min and max
//   unit    'C' or 'F'
//   period  the sensor's read period (ms): a gap of several breaks the line
//   empty   what to say while there are fewer than two points
//   range   the range's name, set on the svg as data-range
// The svg carries data-points (readings drawn) and data-segments (pieces
// the line is broken into) for tests and for anyone inspecting it.
'use strict';
window.chart = (function () {
  const { svg: node } = window.dom;
  const { fmt1, duration, toUnit, unitSym } = window.format;
  const DAY = 86400000;
  const MIN_SPAN_LIVE = 10000;  // ms: the live chart spans at least this
  const MIN_GAP = 10000;        // ms: a shorter pause never breaks the line
  const PX_PER_POINT = 1.5;     // readings are averaged into one point per this many px
  const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400, 56 * 86400].map((s) => s * 1000);
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  function dateLabel(t) { const d = new Date(t); return d.getDate() + ' ' + MONTHS[d.getMonth()]; }
  function isMidnight(t) { const d = new Date(t); return d.getHours() === 0 && d.getMinutes() === 0; }
  function clock(t, secs) {
    const d = new Date(t);
    const p = (v) => String(v).padStart(2, '0');
    return p(d.getHours()) + ':' + p(d.getMinutes()) + (secs ? ':' + p(d.getSeconds()) : '');
  }
  // stamp is a reading's time for the read-out: with the date when the
  // chart spans more than a day.
  function stamp(t, span) { return (span > DAY ? dateLabel(t) + ' ' : '') + clock(t, span <= DAY); }

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

  // The min/max of a point: a stored row's own, a raw reading's value.
  const lo = (p, k) => (p[k + '0'] === undefined ? p[k] : p[k + '0']);
  const hi = (p, k) => (p[k + '1'] === undefined ? p[k] : p[k + '1']);

  // layout is the chart's size and margins for a box this wide.
  function layout(width) {
    const W = Math.max(260, Math.round(width || 600));
    const phone = W < 520;
    const H = phone ? 220 : 290;
    const m = { l: phone ? 36 : 44, r: phone ? 36 : 44, t: 14, b: 26 };
    return { W, H, phone, m, pw: W - m.l - m.r, ph: H - m.t - m.b };
  }

  // extent is the lowest and highest temperature (in the unit shown) and
  // humidity, min/max bands included.
  function extent(P, unit) {
    const e = { cl: Infinity, ch: -Infinity, hl: Infinity, hh: -Infinity };
    for (const p of P) {
      e.cl = Math.min(e.cl, toUnit(lo(p, 'c'), unit));
      e.ch = Math.max(e.ch, toUnit(hi(p, 'c'), unit));
      e.hl = Math.min(e.hl, lo(p, 'h'));
      e.hh = Math.max(e.hh, hi(p, 'h'));
    }
    return e;
  }

  // rows picks the grid's row count, shared by both axes: the one that
  // leaves the least empty band on the worse of the two, so neither line
  // sits squashed.
  function rows(e, phone, unit) {
    let best = Infinity, pick = null;
    for (const n of phone ? [4, 5] : [5, 4, 6]) {
      const ys = scale(e.cl, e.ch, n, unit === 'F' ? 1.8 : 1), yh = scale(e.hl, e.hh, n, 4);
      const waste = Math.max(1 - (e.ch - e.cl) / (ys.hi - ys.lo), 1 - (e.hh - e.hl) / (yh.hi - yh.lo));
      if (waste < best - 0.05) { best = waste; pick = { n, ys, yh }; }
    }
    return pick;
  }

  // valueAxes draws the grid with the temperature labels on the left and
  // the humidity labels on the right.
  function valueAxes(svg, g, r) {
    const dec = (s) => (s.step < 1 ? 1 : 0);
    for (let i = 0; i < r.n; i++) {
      const y = Math.round(g.m.t + i / (r.n - 1) * g.ph) + 0.5;
      node(svg, 'line', { x1: g.m.l, x2: g.W - g.m.r, y1: y, y2: y, class: i === r.n - 1 ? 'base' : 'grid' });
      const tv = r.ys.hi - i * r.ys.step, hv = r.yh.hi - i * r.yh.step;
      node(svg, 'text', { x: g.m.l - 6, y: y + 4, 'text-anchor': 'end', class: 'ax-t' }, tv.toFixed(dec(r.ys)) + '°');
      node(svg, 'text', { x: g.W - g.m.r + 6, y: y + 4, 'text-anchor': 'start', class: 'ax-h' }, hv.toFixed(dec(r.yh)) + '%');
    }
  }

  // timeAxis draws ticks at the finest round step that leaves room for
  // each label (HH:MM:SS needs ~75 px, HH:MM and dates ~55 px). Steps of a
  // day or more are labelled with dates, and so is midnight on shorter
  // steps.
  function timeAxis(svg, g, t0, t1, X) {
    let ts = TIME_STEPS[TIME_STEPS.length - 1];
    for (const s of TIME_STEPS) {
      if ((t1 - t0) / s <= g.pw / (s < 60000 ? 75 : 55)) { ts = s; break; }
    }
    const tzOff = new Date(t0).getTimezoneOffset() * 60000;
    for (let t = Math.ceil((t0 - tzOff) / ts) * ts + tzOff; t <= t1; t += ts) {
      const x = Math.round(X(t)) + 0.5;
      const label = ts >= DAY || (t1 - t0 > 12 * 3600000 && isMidnight(t)) ? dateLabel(t) : clock(t, ts < 60000);
      node(svg, 'line', { x1: x, x2: x, y1: g.H - g.m.b, y2: g.H - g.m.b + 4, class: 'base' });
      node(svg, 'text', { x: x, y: g.H - g.m.b + 17, 'text-anchor': 'middle' }, label);
    }
  }

  // series averages the points into buckets of `bucket` ms, so thousands
  // of readings stay cheap, and starts a new series after a gap longer
  // than `gap` (daemon restarted, sensor failing) rather than drawing
  // across it.
  function series(P, gap, bucket) {
    const all = [];
    let cur = null, prevT = -Infinity;
    for (const p of P) {
      if (p.t - prevT > gap) { cur = []; all.push(cur); }
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
    return all;
  }

  // bands draws each bucket's minimum to maximum, for rolled-up rows.
  function bands(svg, all, s) {
    let bT = '', bH = '';
    for (const b of all) {
      const xs = b.map((k) => s.X((k.t0 + k.t) / 2).toFixed(1));
      const fwd = (f) => b.map((k, i) => (i ? 'L' : 'M') + xs[i] + ',' + f(k).toFixed(1)).join('');
      const back = (f) => b.map((k, i) => 'L' + xs[i] + ',' + f(k).toFixed(1)).reverse().join('');
      bT += fwd((k) => s.YT(k.c1)) + back((k) => s.YT(k.c0)) + 'Z';
      bH += fwd((k) => s.YH(k.h1)) + back((k) => s.YH(k.h0)) + 'Z';
    }
    node(svg, 'path', { d: bH, class: 'band-h', 'data-band': 'humidity' });
    node(svg, 'path', { d: bT, class: 'band-t', 'data-band': 'temperature' });
  }

  // lines draws both lines and the area under the temperature.
  function lines(svg, all, s, base) {
    let dT = '', dH = '', area = '';
    for (const b of all) {
      let segT = '', segH = '';
      b.forEach((k, i) => {
        const x = s.X((k.t0 + k.t) / 2).toFixed(1);
        segT += (i ? 'L' : 'M') + x + ',' + s.YT(k.c / k.n).toFixed(1);
        segH += (i ? 'L' : 'M') + x + ',' + s.YH(k.h / k.n).toFixed(1);
      });
      if (b.length === 1) { segT += 'h0.1'; segH += 'h0.1'; }
      const xa = s.X((b[0].t0 + b[0].t) / 2).toFixed(1), xb = s.X((b[b.length - 1].t0 + b[b.length - 1].t) / 2).toFixed(1);
      area += segT + 'L' + xb + ',' + base + 'L' + xa + ',' + base + 'Z';
      dT += segT;
      dH += segH;
    }
    node(svg, 'path', { d: area, class: 'area-t' });
    node(svg, 'path', { d: dH, class: 'ln ln-h', 'data-series': 'humidity' });
    node(svg, 'path', { d: dT, class: 'ln ln-t', 'data-series': 'temperature' });
  }

  function create(box, svg, data) {
    let geo = null;           // the last drawing's geometry, for the read-out
    let pointerX = null, tip = null;
    let pending = false;

    function draw() {
      const d = data();
      const g = layout(box.clientWidth);
      svg.setAttribute('viewBox', '0 0 ' + g.W + ' ' + g.H);
      svg.setAttribute('width', g.W);
      svg.setAttribute('height', g.H);
      while (svg.lastChild) svg.removeChild(svg.lastChild);
      const P = d.points;
      svg.dataset.points = String(P.length);
      svg.dataset.range = d.range;
      geo = null;
      if (P.length < 2) {
        node(svg, 'title', { id: 'chart-desc' }, 'No readings yet');
        node(svg, 'text', { x: g.W / 2, y: g.H / 2, 'text-anchor': 'middle', class: 'empty' }, d.empty);
        return;
      }
      const live = d.from === undefined;
      const t0 = live ? P[0].t : d.from, t1 = live ? Math.max(P[P.length - 1].t, t0 + MIN_SPAN_LIVE) : d.to;
      const e = extent(P, d.unit);
      const r = rows(e, g.phone, d.unit);
      // Scales: X in ms, YT in °C (drawn in the unit shown), YH in %RH.
      const s = {
        X: (t) => g.m.l + (t - t0) / (t1 - t0) * g.pw,
        YT: (c) => g.m.t + (r.ys.hi - toUnit(c, d.unit)) / (r.ys.hi - r.ys.lo) * g.ph,
        YH: (v) => g.m.t + (r.yh.hi - v) / (r.yh.hi - r.yh.lo) * g.ph,
      };
      node(svg, 'title', { id: 'chart-desc' },
        'Chart of the last ' + duration(t1 - t0) + ': temperature between ' + fmt1(e.cl) + ' and ' + fmt1(e.ch) + ' ' + unitSym(d.unit) +
        ', humidity between ' + fmt1(e.hl) + ' and ' + fmt1(e.hh) + ' %.');
      valueAxes(svg, g, r);
      timeAxis(svg, g, t0, t1, s.X);
      const gap = Math.max(MIN_GAP, 5 * d.period, 2.5 * (d.step || 0));
      const all = series(P, gap, (t1 - t0) / (g.pw / PX_PER_POINT));
      svg.dataset.segments = String(all.length);
      if (d.step > 0) bands(svg, all, s);
      lines(svg, all, s, g.H - g.m.b);
      const lp = P[P.length - 1];
      node(svg, 'circle', { cx: s.X(lp.t), cy: s.YH(lp.h), r: 4, class: 'dot-h' });
      node(svg, 'circle', { cx: s.X(lp.t), cy: s.YT(lp.c), r: 4, class: 'dot-t' });
      geo = { g, t0, t1, s, P, unit: d.unit };
      if (pointerX !== null) showTip(pointerX);
    }

    function drawSoon() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; draw(); });
    }

    // showTip: the reading nearest the pointer, with its time.
    function showTip(clientX) {
      if (tip) { tip.remove(); tip = null; }
      if (clientX === null || !geo || !geo.P.length) return;
      const { g, P } = geo;
      const rect = svg.getBoundingClientRect();
      const x = (clientX - rect.left) * g.W / rect.width;
      if (x < g.m.l || x > g.W - g.m.r) return;
      const t = geo.t0 + (x - g.m.l) / g.pw * (geo.t1 - geo.t0);
      let a = 0, b = P.length - 1;
      while (b - a > 1) { const mid = (a + b) >> 1; if (P[mid].t < t) a = mid; else b = mid; }
      const p = Math.abs(P[a].t - t) < Math.abs(P[b].t - t) ? P[a] : P[b];
      const px = geo.s.X(p.t);
      tip = node(svg, 'g', { class: 'tip', 'aria-hidden': 'true' });
      node(tip, 'line', { x1: px, x2: px, y1: g.m.t, y2: g.H - g.m.b, class: 'cross' });
      node(tip, 'circle', { cx: px, cy: geo.s.YH(p.h), r: 4, class: 'dot-h' });
      node(tip, 'circle', { cx: px, cy: geo.s.YT(p.c), r: 4, class: 'dot-t' });
      const label = stamp(p.t, geo.t1 - geo.t0) + '  ' + fmt1(toUnit(p.c, geo.unit)) + ' ' + unitSym(geo.unit) + '  ' + fmt1(p.h) + ' %';
      const w = label.length * 7 + 16;
      const bx = Math.min(Math.max(px - w / 2, g.m.l), g.W - g.m.r - w);
      node(tip, 'rect', { x: bx, y: g.m.t, width: w, height: 22, rx: 6 });
      node(tip, 'text', { x: bx + w / 2, y: g.m.t + 15.5, 'text-anchor': 'middle' }, label);
    }
    svg.addEventListener('pointermove', (e) => { pointerX = e.clientX; showTip(pointerX); });
    svg.addEventListener('pointerleave', () => { pointerX = null; showTip(null); });

    if (window.ResizeObserver) new ResizeObserver(drawSoon).observe(box);
    else window.addEventListener('resize', drawSoon);

    return { draw, drawSoon };
  }

  return { create };
})();
