// sensord dashboard: the one way every script builds and finds DOM nodes,
// so each panel reads alike and none keeps its own copy.
//
//   dom.$(id)                         document.getElementById(id)
//   dom.el(tag, cls, text)            a new HTML element, its class and text optional
//   dom.svg(parent, name, attrs, text)  a new SVG element with attributes (and
//                                     text), appended to parent and returned
'use strict';
window.dom = (function () {
  const SVGNS = 'http://www.w3.org/2000/svg';

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(parent, name, attrs, text) {
    const n = document.createElementNS(SVGNS, name);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    parent.appendChild(n);
    return n;
  }

  return { $, el, svg };
})();
