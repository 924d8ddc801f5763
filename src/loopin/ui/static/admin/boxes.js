// Draws boxes over an image in an SVG overlay that scales with it. Each box is {left, top,
// width, height, label, score?, kind: "model" | "human"} in the image's natural pixels.
// - A human loop's figures, <figure class="boxes-figure" data-boxes='[...]'><img ...></figure>:
//   every box gets a number on the image, placed where no other number is, and its label and
//   score are listed beside the image under that number, so no text covers another; the
//   image fits the page, and zooms.
// - loopinBoxes.draw(figure, boxes) (an endpoint's try-out): each box's label on the image.
(function () {
  'use strict';
  var COLORS = { model: '#f59e0b', human: '#10b981' };
  var SVG = 'http://www.w3.org/2000/svg';
  var ZOOM_STEP = 1.25;

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function html(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Where each box's number goes: the first free spot among its corners and along its
   * edges, then anywhere on the image nearest its top-left corner (numbers never overlap). */
  function placeTags(boxes, width, height, r) {
    var placed = [];
    function free(c) {
      if (c[0] < r || c[1] < r || c[0] > width - r || c[1] > height - r) return false;
      return placed.every(function (p) { return Math.abs(p[0] - c[0]) >= 2 * r || Math.abs(p[1] - c[1]) >= 2 * r; });
    }
    return boxes.map(function (b) {
      var x1 = b.left + r;
      var y1 = b.top + r;
      var x2 = b.left + b.width - r;
      var y2 = b.top + b.height - r;
      var corners = [[x1, y1], [x2, y1], [x1, y2], [x2, y2]];
      if (b.kind === 'human') corners.reverse(); // a kept model box: its twin's number stays apart
      var candidates = corners.slice();
      for (var t = x1 + 2 * r; t < x2; t += 2 * r) candidates.push([t, y1], [t, y2]);
      for (t = y1 + 2 * r; t < y2; t += 2 * r) candidates.push([x1, t], [x2, t]);
      var spot = candidates.find(free);
      if (!spot) {
        var grid = [];
        for (var gy = r; gy <= height - r; gy += 2 * r) {
          for (var gx = r; gx <= width - r; gx += 2 * r) grid.push([gx, gy]);
        }
        grid.sort(function (a, c) { return Math.hypot(a[0] - x1, a[1] - y1) - Math.hypot(c[0] - x1, c[1] - y1); });
        spot = grid.find(free) || corners[0];
      }
      placed.push(spot);
      return spot;
    });
  }

  /** A fresh overlay on the figure's image, with one outlined group per box (none if the
   * image has not loaded). */
  function overlay(figure, boxes) {
    var img = figure.querySelector('img');
    var old = figure.querySelector('svg');
    if (old) old.remove();
    if (!img.naturalWidth) return null;
    var svg = el('svg', { viewBox: '0 0 ' + img.naturalWidth + ' ' + img.naturalHeight, preserveAspectRatio: 'none' });
    var stroke = Math.max(2, img.naturalWidth / 300);
    var groups = boxes.map(function (b) {
      var g = el('g', { 'data-kind': b.kind || 'model', 'class': 'box' });
      g.appendChild(el('rect', {
        x: b.left, y: b.top, width: b.width, height: b.height, fill: 'none', stroke: COLORS[b.kind] || COLORS.model,
        'stroke-width': stroke, 'stroke-dasharray': b.kind === 'human' ? '' : (stroke * 3) + ' ' + (stroke * 2)
      }));
      svg.appendChild(g);
      return g;
    });
    figure.appendChild(svg);
    return { svg: svg, width: img.naturalWidth, height: img.naturalHeight, stroke: stroke, groups: groups };
  }

  function draw(figure, boxes) {
    var o = overlay(figure, boxes);
    if (!o) return;
    boxes.forEach(function (b, i) {
      var text = (b.label || '') + (b.score != null ? ' ' + Number(b.score).toFixed(2) : '');
      if (!text) return;
      var color = COLORS[b.kind] || COLORS.model;
      var size = Math.max(12, o.width / 50);
      var y = b.kind === 'human' ? b.top + b.height + size : Math.max(size, b.top - o.stroke);
      o.groups[i].appendChild(el('text', { x: b.left, y: y, fill: color, 'font-size': size, 'font-family': 'system-ui, sans-serif', 'font-weight': 600, 'paint-order': 'stroke', stroke: '#000', 'stroke-width': size / 8 }, text));
    });
  }

  /** Numbers on the boxes; the groups, for the list beside the image to highlight. */
  function drawNumbered(figure, boxes) {
    var o = overlay(figure, boxes);
    if (!o) return [];
    var r = Math.max(9, Math.min(o.width, o.height) / 45);
    var spots = placeTags(boxes, o.width, o.height, r);
    var tags = el('g', { 'class': 'tags' }); // over every outline
    boxes.forEach(function (b, i) {
      var tag = el('g', { 'class': 'tag' });
      tag.appendChild(el('circle', { cx: spots[i][0], cy: spots[i][1], r: r, fill: COLORS[b.kind] || COLORS.model }));
      tag.appendChild(el('text', {
        x: spots[i][0], y: spots[i][1], fill: '#000', 'font-size': r * (i < 9 ? 1.3 : 1.05), 'font-weight': 700,
        'font-family': 'system-ui, sans-serif', 'text-anchor': 'middle', 'dominant-baseline': 'central'
      }, String(i + 1)));
      tags.appendChild(tag);
    });
    o.svg.appendChild(tags);
    return o.groups;
  }

  /** The numbered list beside the image: number, label, score, and whose box it is. */
  function list(boxes) {
    var ol = html('ol', 'boxes-list');
    boxes.forEach(function (b, i) {
      var li = html('li', 'boxes-entry ' + (b.kind === 'human' ? 'human' : 'model'));
      li.appendChild(html('span', 'boxes-number', String(i + 1)));
      li.appendChild(html('span', 'boxes-label', b.label || '(no label)'));
      if (b.score != null) li.appendChild(html('span', 'boxes-score muted small', Number(b.score).toFixed(2)));
      ol.appendChild(li);
    });
    return ol;
  }

  function setUp(figure) {
    var boxes = JSON.parse(figure.getAttribute('data-boxes') || '[]');
    var img = figure.querySelector('img');
    var zoom = 1;
    var layout = html('div', 'boxes-layout');
    var main = html('div', 'boxes-main');
    var view = html('div', 'boxes-view');
    var entries = list(boxes);
    var tools = html('div', 'boxes-tools');
    [['−', 'Zoom out', 1 / ZOOM_STEP], ['+', 'Zoom in', ZOOM_STEP], ['Fit', 'Show the whole image', 0]].forEach(function (t) {
      var button = html('button', 'secondary small', t[0]);
      button.type = 'button';
      button.title = t[1];
      button.addEventListener('click', function () {
        zoom = t[2] ? Math.max(1, Math.min(8, zoom * t[2])) : 1;
        size();
      });
      tools.appendChild(button);
    });
    figure.replaceWith(layout);
    view.appendChild(figure);
    main.append(tools, view);
    layout.append(main, entries);

    /** Fit the image to the view (its width, and the window's height), times the zoom. */
    function size() {
      if (!img.naturalWidth) return;
      var fit = Math.min(view.clientWidth / img.naturalWidth, (window.innerHeight * 0.8) / img.naturalHeight);
      figure.style.width = Math.floor(img.naturalWidth * fit * zoom) + 'px';
    }
    function drawn() {
      var groups = drawNumbered(figure, boxes);
      Array.prototype.forEach.call(entries.children, function (li, i) {
        li.addEventListener('mouseenter', function () { groups[i].classList.add('hot'); });
        li.addEventListener('mouseleave', function () { groups[i].classList.remove('hot'); });
      });
      size();
    }
    if (img.complete) drawn();
    else img.addEventListener('load', drawn);
    window.addEventListener('resize', size);
  }

  window.loopinBoxes = { draw: draw };
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('figure.boxes-figure[data-boxes]').forEach(setUp);
  });
})();
