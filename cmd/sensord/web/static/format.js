// sensord dashboard: how the page writes numbers, durations and units,
// shared by every panel so the same value reads the same everywhere.
//
//   format.fmt1(v)            one decimal: 21.44 -> "21.4", never "-0.0"
//   format.duration(ms)       "45 s", "3 min 20 s", "5 h 10 min", "3 d 4 h"
//   format.toUnit(c, unit)    degrees C in the unit shown ('C' or 'F')
//   format.unitSym(unit)      "°C" or "°F"
//   format.UNITS              each metric's unit, as sensord names them
'use strict';
window.format = (function () {
  const UNITS = Object.freeze({ temperature: '°C', humidity: '%', dew_point: '°C', absolute_humidity: 'g/m³' });

  function fmt1(v) { return (Math.round(v * 10) / 10).toFixed(1).replace('-0.0', '0.0'); }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min' + (s % 60 && m < 10 ? ' ' + (s % 60) + ' s' : '');
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function toUnit(c, unit) { return unit === 'F' ? c * 9 / 5 + 32 : c; }
  function unitSym(unit) { return unit === 'F' ? '°F' : '°C'; }

  return { fmt1, duration, toUnit, unitSym, UNITS };
})();
