// crowd-bounding-box: draw, select, move, resize, relabel and delete boxes on an image.
// Boxes are kept in natural-image pixels (integers), whatever the zoom. A drag draws, even
// inside other boxes; a click selects; only the selected box moves (or resizes, by its handles).
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var HANDLES = ['nw', 'n', 'ne', 'e', 'se', 's', 'sw', 'w'];
  var CURSORS = { nw: 'nwse-resize', se: 'nwse-resize', ne: 'nesw-resize', sw: 'nesw-resize', n: 'ns-resize', s: 'ns-resize', e: 'ew-resize', w: 'ew-resize' };
  var MIN_SCREEN_SIZE = 4; // a click, not a drag: it draws and moves nothing
  var MAX_TAGS = 150;

  function toBox(item) {
    if (!item || typeof item !== 'object') return null;
    var box = {
      label: item.label === undefined || item.label === null ? '' : String(item.label),
      left: Math.round(Number(item.left)),
      top: Math.round(Number(item.top)),
      width: Math.round(Number(item.width)),
      height: Math.round(Number(item.height)),
    };
    return [box.left, box.top, box.width, box.height].every(isFinite) ? box : null;
  }

  function contains(b, p) {
    return p.x >= b.left && p.x <= b.left + b.width && p.y >= b.top && p.y <= b.top + b.height;
  }

  class BoundingBox extends C.ShapeAnnotator {
    build() {
      var initial = C.jsonAttr(this, 'initial-value', null);
      this.initialGiven = Array.isArray(initial);
      this.boxes = this.shapes = this.initialGiven ? initial.map(toBox).filter(Boolean) : [];
      this.nouns = ['box', 'boxes'];
      this.gesture = null;
      super.build();
    }

    get value() {
      var boxes = (this.boxes || []).map(function (b) {
        return { height: b.height, label: b.label, left: b.left, top: b.top, width: b.width };
      });
      var value = { boundingBoxes: boxes, inputImageProperties: this.inputImageProperties };
      if (this.initialGiven) value.initialValueModified = this.modified;
      return value;
    }

    helpText() {
      return 'Drag on the image to draw a box with the chosen label, also inside other boxes. Click a box to select it: ' +
        'then drag it to move it, drag its handles to resize it, change its label under the labels, nudge it with the ' +
        'arrows, Delete removes it, Esc lets go. Ctrl+Z undoes, Shift+Ctrl+Z redoes. Wheel zooms; Space-drag pans.';
    }

    // -- hit testing --

    _handleAt(p, e) {
      if (this.selected < 0) return null;
      var b = this.boxes[this.selected];
      var reach = e.pointerType === 'touch' ? 14 : 7;
      var points = this._handlePoints(b);
      for (var i = 0; i < HANDLES.length; i++) {
        if (Math.abs(points[i][0] - p.sx) <= reach && Math.abs(points[i][1] - p.sy) <= reach) return HANDLES[i];
      }
      return null;
    }

    _handlePoints(b) {
      var x1 = this.sx(b.left);
      var y1 = this.sy(b.top);
      var x2 = this.sx(b.left + b.width);
      var y2 = this.sy(b.top + b.height);
      var xm = (x1 + x2) / 2;
      var ym = (y1 + y2) / 2;
      return [[x1, y1], [xm, y1], [x2, y1], [x2, ym], [x2, y2], [xm, y2], [x1, y2], [x1, ym]];
    }

    /** The smallest box under the point, so boxes inside bigger ones stay reachable. */
    _boxAt(p) {
      var best = -1;
      var bestArea = Infinity;
      for (var i = 0; i < this.boxes.length; i++) {
        var b = this.boxes[i];
        if (contains(b, p)) {
          var area = b.width * b.height;
          if (area < bestArea) {
            best = i;
            bestArea = area;
          }
        }
      }
      return best;
    }

    cursorAt(p, e) {
      if (this.gesture) return this.gesture.kind === 'resize' ? CURSORS[this.gesture.handle] : this.gesture.kind === 'move' ? 'move' : 'crosshair';
      var handle = this._handleAt(p, e);
      if (handle) return CURSORS[handle];
      return this._inSelected(p) ? 'move' : 'crosshair';
    }

    _inSelected(p) {
      return this.selected >= 0 && contains(this.boxes[this.selected], p);
    }

    // -- gestures --
    // Every gesture notes where it began on screen (sx, sy) and where it is (ex, ey): one
    // that moved less than MIN_SCREEN_SIZE is a click, which selects the box under it.

    onPointerDown(p, e) {
      var at = { sx: p.sx, sy: p.sy, ex: p.sx, ey: p.sy };
      if (!e.shiftKey) {
        var handle = this._handleAt(p, e);
        if (handle) {
          this.gesture = Object.assign(at, { kind: 'resize', handle: handle, start: Object.assign({}, this.boxes[this.selected]) });
          return true;
        }
        if (this._inSelected(p)) {
          this.gesture = Object.assign(at, { kind: 'move', from: p, start: Object.assign({}, this.boxes[this.selected]) });
          return true;
        }
      }
      if (!this._labels.length && this._boxAt(p) < 0) {
        this._status.textContent = 'There are no labels to draw with.';
        return false;
      }
      var x = Math.round(this.clampX(p.x));
      var y = Math.round(this.clampY(p.y));
      this.gesture = Object.assign(at, { kind: 'draw', x1: x, y1: y, x2: x, y2: y });
      this.invalidate(C.OVERLAY);
      return true;
    }

    onPointerMove(p) {
      var g = this.gesture;
      if (!g) return;
      g.ex = p.sx;
      g.ey = p.sy;
      if (g.kind === 'draw') {
        g.x2 = Math.round(this.clampX(p.x));
        g.y2 = Math.round(this.clampY(p.y));
      } else if (g.kind === 'move') {
        var b = this.boxes[this.selected];
        b.left = Math.max(0, Math.min(this.naturalWidth - b.width, g.start.left + Math.round(p.x - g.from.x)));
        b.top = Math.max(0, Math.min(this.naturalHeight - b.height, g.start.top + Math.round(p.y - g.from.y)));
      } else {
        this._resizeTo(g, Math.round(this.clampX(p.x)), Math.round(this.clampY(p.y)));
      }
      this.invalidate(C.OVERLAY);
    }

    _resizeTo(g, x, y) {
      var s = g.start;
      var x1 = s.left;
      var y1 = s.top;
      var x2 = s.left + s.width;
      var y2 = s.top + s.height;
      if (g.handle.indexOf('w') >= 0) x1 = x;
      if (g.handle.indexOf('e') >= 0) x2 = x;
      if (g.handle.indexOf('n') >= 0) y1 = y;
      if (g.handle.indexOf('s') >= 0) y2 = y;
      var b = this.boxes[this.selected];
      b.left = Math.min(x1, x2);
      b.top = Math.min(y1, y2);
      b.width = Math.max(1, Math.abs(x2 - x1));
      b.height = Math.max(1, Math.abs(y2 - y1));
    }

    onPointerUp(p) {
      var g = this.gesture;
      this.gesture = null;
      if (!g) return;
      var click = Math.abs(g.ex - g.sx) < MIN_SCREEN_SIZE && Math.abs(g.ey - g.sy) < MIN_SCREEN_SIZE;
      if (click && g.kind !== 'resize') {
        if (g.kind === 'move') Object.assign(this.boxes[this.selected], g.start);
        this.select(this._boxAt(p));
      } else if (g.kind === 'draw' && g.x1 !== g.x2 && g.y1 !== g.y2 && this._labels.length) {
        this.boxes.push({
          label: this._labels[this.activeLabel],
          left: Math.min(g.x1, g.x2),
          top: Math.min(g.y1, g.y2),
          width: Math.abs(g.x2 - g.x1),
          height: Math.abs(g.y2 - g.y1),
        });
        this.select(-1);
      }
      this.commit();
      this.invalidate(C.OVERLAY);
    }

    onToolKey(e) {
      if (e.key === 'Escape' && this.gesture) {
        // Esc in the middle of a gesture: no box drawn, the moved or resized one put back.
        if (this.gesture.start) Object.assign(this.boxes[this.selected], this.gesture.start);
        this.gesture = null;
      }
      var step = e.shiftKey ? 10 : 1;
      var move = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
      if (!move || this.selected < 0) return super.onToolKey(e);
      var b = this.boxes[this.selected];
      b.left = Math.max(0, Math.min(this.naturalWidth - b.width, b.left + move[0]));
      b.top = Math.max(0, Math.min(this.naturalHeight - b.height, b.top + move[1]));
      this.commit();
      return true;
    }

    // -- drawing --

    drawLayer(ctx) {
      // One strokeRect per box on whole pixels, grouped by colour: far cheaper for the
      // rasteriser than one long path of a thousand overlapping rectangles.
      var self = this;
      var scale = this.view.scale;
      var groups = {};
      var tagged = [];
      this.boxes.forEach(function (b, i) {
        if (i === self.selected) return;
        var color = self.colorOf(b.label);
        (groups[color] = groups[color] || []).push(b);
        if (b.width * scale >= 40 && b.height * scale >= 14) tagged.push(b);
      });
      ctx.lineWidth = 2;
      Object.keys(groups).forEach(function (color) {
        ctx.strokeStyle = color;
        groups[color].forEach(function (b) {
          var x = Math.round(self.sx(b.left));
          var y = Math.round(self.sy(b.top));
          ctx.strokeRect(x, y, Math.round(self.sx(b.left + b.width)) - x, Math.round(self.sy(b.top + b.height)) - y);
        });
      });
      // Tags on the biggest boxes only: past a hundred or so they hide each other anyway.
      if (tagged.length > MAX_TAGS) {
        tagged.sort(function (a, b) {
          return b.width * b.height - a.width * a.height;
        });
        tagged.length = MAX_TAGS;
      }
      tagged.forEach(function (b) {
        self.drawTag(ctx, b.label, self.colorOf(b.label), Math.round(self.sx(b.left)), Math.round(self.sy(b.top)));
      });
    }

    drawOverlay(ctx) {
      var rects = [];
      var g = this.gesture;
      if (g && g.kind === 'draw') {
        var x1 = this.sx(Math.min(g.x1, g.x2));
        var y1 = this.sy(Math.min(g.y1, g.y2));
        var x2 = this.sx(Math.max(g.x1, g.x2));
        var y2 = this.sy(Math.max(g.y1, g.y2));
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 2;
        ctx.strokeStyle = C.color(this.activeLabel);
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        ctx.setLineDash([]);
        rects.push([x1, y1, x2, y2]);
      }
      if (this.selected >= 0) {
        var b = this.boxes[this.selected];
        var c = this.colorOf(b.label);
        var x = this.sx(b.left);
        var y = this.sy(b.top);
        var w = b.width * this.view.scale;
        var h = b.height * this.view.scale;
        ctx.fillStyle = c + '33';
        ctx.fillRect(x, y, w, h);
        ctx.lineWidth = 3;
        ctx.strokeStyle = c;
        ctx.strokeRect(x, y, w, h);
        ctx.fillStyle = '#fff';
        ctx.lineWidth = 1.5;
        this._handlePoints(b).forEach(function (pt) {
          ctx.fillRect(pt[0] - 4, pt[1] - 4, 8, 8);
          ctx.strokeRect(pt[0] - 4, pt[1] - 4, 8, 8);
        });
        var tagWidth = this.drawTag(ctx, b.label || '(no label)', c, x, y);
        rects.push([x, y, x + w, y + h], [x, y - 16, x + tagWidth, y + 16]);
      }
      return this.areaOf(rects);
    }
  }

  customElements.define('crowd-bounding-box', BoundingBox);
})();
