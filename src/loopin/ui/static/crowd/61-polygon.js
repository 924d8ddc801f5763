// crowd-polygon: outline objects with polygons; select, move vertices or whole polygons,
// relabel and delete. A click on a polygon selects it; only the selected polygon moves.
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var CLOSE_REACH = 9;
  var CLICK = 4; // screen pixels: a press that moves less is a click

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

  class Polygon extends C.ShapeAnnotator {
    build() {
      var initial = C.jsonAttr(this, 'initial-value', null);
      this.initialGiven = Array.isArray(initial);
      this.polygons = this.shapes = this.initialGiven ? initial.map(toPolygon).filter(Boolean) : [];
      this.nouns = ['polygon', 'polygons'];
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

    helpText() {
      return 'Click to place the corners of a polygon (Shift-click to start one inside another); click the first corner, ' +
        'double-click or press Enter to close it. Backspace removes the last corner, Esc cancels. Click a polygon to ' +
        'select it: then drag a corner or the inside to move, change its label under the labels, Delete removes it. ' +
        'Ctrl+Z undoes, Shift+Ctrl+Z redoes. Wheel zooms; Space-drag pans.';
    }

    statusText() {
      return super.statusText() + (this.drawing ? ' · drawing: ' + this.drawing.length + ' corners' : '');
    }

    onCommandKey(e) {
      if (!this.drawing || e.key.toLowerCase() !== 'z' || e.shiftKey) return super.onCommandKey(e);
      this.drawing.pop(); // while drawing, undo takes back the last corner
      if (!this.drawing.length) this.drawing = null;
      this.invalidate(C.OVERLAY);
      return true;
    }

    _apply(state, asEdit) {
      this.drawing = null;
      super._apply(state, asEdit);
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
      if (this.selected >= 0 && inside(this.polygons[this.selected], p)) return 'move';
      return this._polygonAt(p) >= 0 ? 'pointer' : 'crosshair';
    }

    onPointerDown(p, e) {
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
      var moving = vertex >= 0 || (this.selected >= 0 && inside(this.polygons[this.selected], p));
      if (moving) {
        var start = this.polygons[this.selected].vertices.map(function (v) { return { x: v.x, y: v.y }; });
        this.drag = { from: p, start: start, vertex: vertex >= 0 ? vertex : undefined };
        return true;
      }
      var hit = e.shiftKey ? -1 : this._polygonAt(p);
      if (hit >= 0) {
        this.drag = { from: p, pick: hit }; // a click selects it; a drag moves nothing
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
      if (!this.drag || this.drag.pick !== undefined || this.selected < 0) return;
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

    onPointerUp(p) {
      var d = this.drag;
      this.drag = null;
      if (!d) return;
      var click = Math.abs(p.sx - d.from.sx) < CLICK && Math.abs(p.sy - d.from.sy) < CLICK;
      if (click && d.pick !== undefined) {
        this.select(d.pick);
      } else if (click) {
        // Not a move: the corners stay put; a click inside selects the polygon under it.
        this.polygons[this.selected].vertices = d.start;
        if (d.vertex === undefined) this.select(this._polygonAt(p));
      }
      this.commit();
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
      this.commit();
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
      return super.onToolKey(e);
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
