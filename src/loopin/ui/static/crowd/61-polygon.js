// crowd-polygon: outline objects with polygons; select, move vertices or whole polygons,
// relabel and delete.
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var CLOSE_REACH = 9;

  function toPolygon(item) {
    if (!item || typeof item !== 'object' || !Array.isArray(item.vertices)) return null;
    var vertices = item.vertices
      .map(function (v) {
        return { x: Math.round(Number(v && v.x)), y: Math.round(Number(v && v.y)) };
      })
      .filter(function (v) {
        return isFinite(v.x) && isFinite(v.y);
      });
    return vertices.length >= 3 ? { label: String(item.label === undefined ? '' : item.label), vertices: vertices } : null;
  }

  function inside(poly, p) {
    var hit = false;
    var vs = poly.vertices;
    for (var i = 0, j = vs.length - 1; i < vs.length; j = i++) {
      var a = vs[i];
      var b = vs[j];
      if (a.y > p.y !== b.y > p.y && p.x < ((b.x - a.x) * (p.y - a.y)) / (b.y - a.y) + a.x) hit = !hit;
    }
    return hit;
  }

  class Polygon extends C.ImageAnnotator {
    build() {
      var initial = C.jsonAttr(this, 'initial-value', null);
      this.polygons = Array.isArray(initial) ? initial.map(toPolygon).filter(Boolean) : [];
      this.selected = -1;
      this.drawing = null; // vertices of the polygon being drawn
      this.drag = null;
      super.build();
    }

    get value() {
      return {
        inputImageProperties: this.inputImageProperties,
        polygons: (this.polygons || []).map(function (poly) {
          return {
            label: poly.label,
            vertices: poly.vertices.map(function (v) {
              return { x: v.x, y: v.y };
            }),
          };
        }),
      };
    }

    tools() {
      var self = this;
      this._deleteButton = this._tool('Delete polygon', 'Delete the selected polygon (Delete)', function () {
        self.deleteSelected();
      });
      this._deleteButton.disabled = true;
      return [this._deleteButton];
    }

    helpText() {
      return 'Click to place the corners of a polygon; click the first corner, double-click or press Enter to close it. ' +
        'Backspace removes the last corner, Esc cancels. Click a polygon to select it: drag a corner or the inside to move, ' +
        'a label or number key relabels it, Delete removes it. Wheel zooms; Space-drag pans.';
    }

    statusText() {
      var n = this.polygons.length;
      var text = n + (n === 1 ? ' polygon' : ' polygons');
      if (this.drawing) text += ' · drawing: ' + this.drawing.length + ' corners';
      else if (this.selected >= 0) text += ' · selected: ' + this.polygons[this.selected].label;
      return text;
    }

    select(i) {
      this.selected = i;
      this._deleteButton.disabled = i < 0;
      this.invalidate(C.LAYER | C.OVERLAY);
    }

    deleteSelected() {
      if (this.selected < 0) return;
      this.polygons.splice(this.selected, 1);
      this.select(-1);
    }

    onLabelPicked(label) {
      if (this.selected < 0) return;
      this.polygons[this.selected].label = label;
      this.invalidate(C.OVERLAY);
    }

    _vertexAt(p) {
      if (this.selected < 0) return -1;
      var vs = this.polygons[this.selected].vertices;
      for (var i = 0; i < vs.length; i++) {
        if (Math.abs(this.sx(vs[i].x) - p.sx) <= CLOSE_REACH && Math.abs(this.sy(vs[i].y) - p.sy) <= CLOSE_REACH) return i;
      }
      return -1;
    }

    _polygonAt(p) {
      for (var i = this.polygons.length - 1; i >= 0; i--) {
        if (inside(this.polygons[i], p)) return i;
      }
      return -1;
    }

    cursorAt(p) {
      if (this.drawing) return 'crosshair';
      if (this._vertexAt(p) >= 0) return 'pointer';
      return this._polygonAt(p) >= 0 ? 'move' : 'crosshair';
    }

    onPointerDown(p) {
      var point = { x: Math.round(this.clampX(p.x)), y: Math.round(this.clampY(p.y)) };
      if (this.drawing) {
        var first = this.drawing[0];
        var nearFirst = Math.abs(this.sx(first.x) - p.sx) <= CLOSE_REACH && Math.abs(this.sy(first.y) - p.sy) <= CLOSE_REACH;
        if (nearFirst && this.drawing.length >= 3) this._close();
        else this.drawing.push(point);
        this.invalidate(C.OVERLAY);
        return false;
      }
      var vertex = this._vertexAt(p);
      if (vertex >= 0) {
        this.drag = { vertex: vertex };
        return true;
      }
      var hit = this._polygonAt(p);
      if (hit >= 0) {
        this.select(hit);
        this.drag = { from: p, start: this.polygons[hit].vertices.map(function (v) { return { x: v.x, y: v.y }; }) };
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
      var vs = this.polygons[this.selected].vertices;
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
      if (this.drawing && this.drawing.length >= 3) this._close();
    }

    _close() {
      // A double-click also placed a corner on its first click: drop repeated corners.
      var vs = this.drawing.filter(function (v, i, all) {
        var prev = all[i - 1];
        return !prev || prev.x !== v.x || prev.y !== v.y;
      });
      this.drawing = null;
      if (vs.length < 3) return;
      this.polygons.push({ label: this._labels[this.activeLabel], vertices: vs });
      this.select(this.polygons.length - 1);
    }

    onToolKey(e) {
      if (this.drawing) {
        if (e.key === 'Enter' && this.drawing.length >= 3) this._close();
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

    _path(ctx, vertices, close) {
      var self = this;
      ctx.beginPath();
      vertices.forEach(function (v, i) {
        if (i === 0) ctx.moveTo(self.sx(v.x), self.sy(v.y));
        else ctx.lineTo(self.sx(v.x), self.sy(v.y));
      });
      if (close) ctx.closePath();
    }

    drawLayer(ctx) {
      var self = this;
      ctx.lineWidth = 2;
      this.polygons.forEach(function (poly, i) {
        if (i === self.selected) return;
        var color = self.colorOf(poly.label);
        self._path(ctx, poly.vertices, true);
        ctx.fillStyle = color + '22';
        ctx.fill();
        ctx.strokeStyle = color;
        ctx.stroke();
      });
    }

    drawOverlay(ctx) {
      var self = this;
      if (this.selected >= 0) {
        var poly = this.polygons[this.selected];
        var color = this.colorOf(poly.label);
        this._path(ctx, poly.vertices, true);
        ctx.fillStyle = color + '44';
        ctx.fill();
        ctx.lineWidth = 3;
        ctx.strokeStyle = color;
        ctx.stroke();
        poly.vertices.forEach(function (v) {
          ctx.fillStyle = '#fff';
          ctx.fillRect(self.sx(v.x) - 4, self.sy(v.y) - 4, 8, 8);
          ctx.strokeRect(self.sx(v.x) - 4, self.sy(v.y) - 4, 8, 8);
        });
        var top = poly.vertices[0];
        this.drawTag(ctx, poly.label, color, this.sx(top.x), this.sy(top.y));
      }
      if (this.drawing) {
        var c = C.color(this.activeLabel);
        this._path(ctx, this.drawing.concat(this.hover ? [this.hover] : []), false);
        ctx.lineWidth = 2;
        ctx.strokeStyle = c;
        ctx.setLineDash([6, 4]);
        ctx.stroke();
        ctx.setLineDash([]);
        this.drawing.forEach(function (v, i) {
          ctx.beginPath();
          ctx.arc(self.sx(v.x), self.sy(v.y), i === 0 ? 6 : 4, 0, Math.PI * 2);
          ctx.fillStyle = i === 0 ? '#fff' : c;
          ctx.fill();
          ctx.strokeStyle = c;
          ctx.stroke();
        });
      }
    }
  }

  customElements.define('crowd-polygon', Polygon);
})();
