// Draws boxes over an image: <figure class="boxes-figure" data-boxes='[...]'><img ...></figure>.
// Each box is {left, top, width, height, label, score?, kind: "model" | "human"} in the
// image's natural pixels; the SVG overlay scales with the image.
(function () {
  'use strict';
  var COLORS = { model: '#f59e0b', human: '#10b981' };
  var SVG = 'http://www.w3.org/2000/svg';

  function el(name, attrs) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function draw(figure, boxes) {
    var img = figure.querySelector('img');
    var old = figure.querySelector('svg');
    if (old) old.remove();
    if (!img.naturalWidth) return;
    var svg = el('svg', { viewBox: '0 0 ' + img.naturalWidth + ' ' + img.naturalHeight, preserveAspectRatio: 'none' });
    var stroke = Math.max(2, img.naturalWidth / 300);
    boxes.forEach(function (b) {
      var color = COLORS[b.kind] || COLORS.model;
      var g = el('g', { 'data-kind': b.kind || 'model', 'class': 'box' });
      g.appendChild(el('rect', {
        x: b.left, y: b.top, width: b.width, height: b.height, fill: 'none', stroke: color,
        'stroke-width': stroke, 'stroke-dasharray': b.kind === 'human' ? '' : (stroke * 3) + ' ' + (stroke * 2)
      }));
      var text = (b.label || '') + (b.score != null ? ' ' + Number(b.score).toFixed(2) : '');
      if (text) {
        var size = Math.max(12, img.naturalWidth / 50);
        var y = b.kind === 'human' ? b.top + b.height + size : Math.max(size, b.top - stroke);
        var label = el('text', { x: b.left, y: y, fill: color, 'font-size': size, 'font-family': 'system-ui, sans-serif', 'font-weight': 600, 'paint-order': 'stroke', stroke: '#000', 'stroke-width': size / 8 });
        label.textContent = text;
        g.appendChild(label);
      }
      svg.appendChild(g);
    });
    figure.appendChild(svg);
  }

  function setUp(figure) {
    var boxes = JSON.parse(figure.getAttribute('data-boxes') || '[]');
    var img = figure.querySelector('img');
    if (img.complete) draw(figure, boxes);
    img.addEventListener('load', function () { draw(figure, boxes); });
  }

  window.loopinBoxes = { draw: draw };
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('figure.boxes-figure[data-boxes]').forEach(setUp);
  });
})();
