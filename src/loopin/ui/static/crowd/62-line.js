// crowd-polyline and crowd-line: draw labelled open paths on an image (a line is a polyline
// of exactly two points). Built on the shared image annotator (40-annotator.js) as it is.
// Answer: {inputImageProperties, polylines | lines: [{label, vertices: [{x, y}]}]}, plus
// initialValueModified when the template gave an initial-value.
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var REACH = 8; // screen pixels within which a click hits a corner or a segment

  function toPath(item, minPoints) {
    if (!item || typeof item !== 'object' || !Array.isArray(item.vertices)) return null;
    var vertices = item.vertices
      .map(function (v) {
        return { x: Math.round(Number(v && v.x)), y: Math.round(Number(v && v.y)) };
      })
      .filter(function (v) {
        return isFinite(v.x) && isFinite(v.y);
      });
    if (vertices.length < minPoints) return null;
    return { label: String(item.label === undefined ? '' : item.label), vertices: vertices };
  }

  function key(path) {
    return path.label + ':' + path.vertices.map(function (v) { return v.x + ',' + v.y; }).join(';');
  }

  /** Distance from p to the segment a-b (all in one coordinate space). */
  function toSegment(p, a, b) {
    var dx = b.x - a.x;
    var dy = b.y - a.y;
    var len = dx * dx + dy * dy;
    var t = len ? Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / len)) : 0;
    return Math.hypot(p.x - (a.x + t * dx), p.y - (a.y + t * dy));
  }

  class Polyline extends C.ImageAnnotator {
    /** Points a finished path has: [min, max] (max 0: no limit). */
    get pointLimits() {
      return [2, 0];
    }

    get answerKey() {
      return 'polylines';
    }

    get shapeName() {
      return 'line';
    }

    build() {
      var initial = C.jsonAttr(this, 'initial-value', null);
      // The docs show both forms: an array of paths, and {lines: [...]} / {polylines: [...]}.
      if (initial && !Array.isArray(initial) && typeof initial === 'object') {
        initial = initial[this.answerKey] || initial.lines || initial.polylines || null;
      }
      var limits = this.pointLimits;
      this.paths = Array.isArray(initial)
        ? initial
            .map(function (item) {
              var path = toPath(item, limits[0]);
              if (path && limits[1]) path.vertices = path.vertices.slice(0, limits[1]);
              return path;
            })
            .filter(Boolean)
        : [];
      this._initialKeys = initial !== null && initial !== undefined ? this.paths.map(key).sort().join('\n') : null;
      var colors = C.jsonAttr(this, 'label-colors', null);
      this._labelColors = Array.isArray(colors) ? colors.map(String) : [];
      this.selected = -1;
      this.drawing = null;
      this.drag = null;
      super.build();
    }

    colorOf(label) {
      var i = this._labels.indexOf(label);
      return (i >= 0 && /^#[0-9a-fA-F]{3,8}$/.test(this._labelColors[i] || '') && this._labelColors[i]) || C.color(i);
    }

    get value() {
      var value = { inputImageProperties: this.inputImageProperties };
      var paths = (this.paths || []).map(function (path) {
        return {
          label: path.label,
          vertices: path.vertices.map(function (v) {
            return { x: v.x, y: v.y };
          }),
        };
      });
      value[this.answerKey] = paths;
      if (this._initialKeys !== null && this._initialKeys !== undefined) {
        value.initialValueModified = paths.map(key).sort().join('\n') !== this._initialKeys;
      }
      return value;
    }

    tools() {
      var self = this;
      this._deleteButton = this._tool('Delete ' + this.shapeName, 'Delete the selected ' + this.shapeName + ' (Delete)', function () {
        self.deleteSelected();
      });
      this._deleteButton.disabled = true;
      return [this._deleteButton];
    }

    helpText() {
      var finish = this.pointLimits[1] === 2
        ? 'Click where the line starts, then where it ends.'
        : 'Click to place the points of a line; double-click or press Enter to finish it, Backspace removes the last point, Esc cancels.';
      return finish + ' Click a line to select it: drag a point or the line to move it, a label or number key relabels it, ' +
        'Delete removes it. Wheel zooms; Space-drag pans.';
    }

    statusText() {
      var n = this.paths.length;
      var text = n + ' ' + this.shapeName + (n === 1 ? '' : 's');
      if (this.drawing) text += ' · drawing: ' + this.drawing.length + (this.drawing.length === 1 ? ' point' : ' points');
      else if (this.selected >= 0) text += ' · selected: ' + this.paths[this.selected].label;
      return text;
    }

    select(i) {
      this.selected = i;
      this._deleteButton.disabled = i < 0;
      this.invalidate(C.LAYER | C.OVERLAY);
    }

    deleteSelected() {
      if (this.selected < 0) return;
      this.paths.splice(this.selected, 1);
      this.select(-1);
    }

    onLabelPicked(label) {
      if (this.selected < 0) return;
      this.paths[this.selected].label = label;
      this.invalidate(C.LAYER | C.OVERLAY);
    }

    _screen(v) {
      return { x: this.sx(v.x), y: this.sy(v.y) };
    }

    _vertexAt(p) {
      if (this.selected < 0) return -1;
      var vs = this.paths[this.selected].vertices;
      for (var i = 0; i < vs.length; i++) {
        if (Math.hypot(this.sx(vs[i].x) - p.sx, this.sy(vs[i].y) - p.sy) <= REACH) return i;
      }
      return -1;
    }

    _pathAt(p) {
      var at = { x: p.sx, y: p.sy };
      for (var i = this.paths.length - 1; i >= 0; i--) {
        var vs = this.paths[i].vertices;
        for (var j = 1; j < vs.length; j++) {
          if (toSegment(at, this._screen(vs[j - 1]), this._screen(vs[j])) <= REACH) return i;
        }
      }
      return -1;
    }

    cursorAt(p) {
      if (this.drawing) return 'crosshair';
      if (this._vertexAt(p) >= 0) return 'pointer';
      return this._pathAt(p) >= 0 ? 'move' : 'crosshair';
    }

    onPointerDown(p) {
      var point = { x: Math.round(this.clampX(p.x)), y: Math.round(this.clampY(p.y)) };
      if (this.drawing) {
        var last = this.drawing[this.drawing.length - 1];
        if (last.x !== point.x || last.y !== point.y) this.drawing.push(point);
        if (this.pointLimits[1] && this.drawing.length >= this.pointLimits[1]) this._finish();
        this.invalidate(C.OVERLAY);
        return false;
      }
      var vertex = this._vertexAt(p);
      if (vertex >= 0) {
        this.drag = { vertex: vertex };
        return true;
      }
      var hit = this._pathAt(p);
      if (hit >= 0) {
        this.select(hit);
        this.drag = { from: p, start: this.paths[hit].vertices.map(function (v) { return { x: v.x, y: v.y }; }) };
        return true;
      }
      if (!this._labels.length) return false;
      this.select(-1);
      this.drawing = [point];
      this.hover = point;
      this.invalidate(C.OVERLAY);
      return false;
    }

    onPointerMove(p) {
      if (!this.drag || this.selected < 0) return;
      var vs = this.paths[this.selected].vertices;
      if (this.drag.vertex !== undefined) {
        vs[this.drag.vertex] = { x: Math.round(this.clampX(p.x)), y: Math.round(this.clampY(p.y)) };
      } else {
        var self = this;
        var dx = Math.round(p.x - this.drag.from.x);
        var dy = Math.round(p.y - this.drag.from.y);
        this.drag.start.forEach(function (v, i) {
          vs[i] = { x: Math.round(self.clampX(v.x + dx)), y: Math.round(self.clampY(v.y + dy)) };
        });
      }
      this.invalidate(C.OVERLAY);
    }

    onPointerUp() {
      this.drag = null;
    }

    onHover(p) {
      if (!this.drawing) return;
      this.hover = { x: this.clampX(p.x), y: this.clampY(p.y) };
      this.invalidate(C.OVERLAY);
    }

    onDoubleClick() {
      if (this.drawing) this._finish();
    }

    _finish() {
      var vs = this.drawing;
      this.drawing = null;
      if (vs.length < this.pointLimits[0]) {
        this.invalidate(C.OVERLAY);
        return;
      }
      this.paths.push({ label: this._labels[this.activeLabel], vertices: vs });
      this.select(this.paths.length - 1);
    }

    onToolKey(e) {
      if (this.drawing) {
        if (e.key === 'Enter') this._finish();
        else if (e.key === 'Escape') this.drawing = null;
        else if (e.key === 'Backspace' || e.key === 'Delete') this.drawing.pop();
        else return false;
        if (this.drawing && !this.drawing.length) this.drawing = null;
        this.invalidate(C.OVERLAY);
        return true;
      }
      if (e.key === 'Escape') {
        this.select(-1);
        return true;
      }
      if (this.selected >= 0 && (e.key === 'Delete' || e.key === 'Backspace')) {
        this.deleteSelected();
        return true;
      }
      return false;
    }

    _stroke(ctx, vertices, color, width) {
      var self = this;
      ctx.beginPath();
      vertices.forEach(function (v, i) {
        if (i === 0) ctx.moveTo(self.sx(v.x), self.sy(v.y));
        else ctx.lineTo(self.sx(v.x), self.sy(v.y));
      });
      ctx.lineWidth = width;
      ctx.strokeStyle = color;
      ctx.stroke();
    }

    drawLayer(ctx) {
      var self = this;
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      this.paths.forEach(function (path, i) {
        if (i !== self.selected) self._stroke(ctx, path.vertices, self.colorOf(path.label), 3);
      });
    }

    drawOverlay(ctx) {
      var self = this;
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      if (this.selected >= 0) {
        var path = this.paths[this.selected];
        var color = this.colorOf(path.label);
        this._stroke(ctx, path.vertices, color, 4);
        path.vertices.forEach(function (v) {
          ctx.fillStyle = '#fff';
          ctx.lineWidth = 2;
          ctx.fillRect(self.sx(v.x) - 4, self.sy(v.y) - 4, 8, 8);
          ctx.strokeRect(self.sx(v.x) - 4, self.sy(v.y) - 4, 8, 8);
        });
        this.drawTag(ctx, path.label, color, this.sx(path.vertices[0].x), this.sy(path.vertices[0].y));
      }
      if (this.drawing) {
        var c = this.colorOf(this._labels[this.activeLabel]);
        ctx.setLineDash([6, 4]);
        this._stroke(ctx, this.drawing.concat(this.hover ? [this.hover] : []), c, 2);
        ctx.setLineDash([]);
        this.drawing.forEach(function (v) {
          ctx.beginPath();
          ctx.arc(self.sx(v.x), self.sy(v.y), 4, 0, Math.PI * 2);
          ctx.fillStyle = c;
          ctx.fill();
        });
      }
    }
  }

  class Line extends Polyline {
    get pointLimits() {
      return [2, 2];
    }

    get answerKey() {
      return 'lines';
    }
  }

  customElements.define('crowd-polyline', Polyline);
  customElements.define('crowd-line', Line);
})();
