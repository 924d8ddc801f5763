// crowd-keypoint: place, move, relabel and delete labelled points on an image. A point is its
// own handle: dragging it moves it; a placed point is not left selected.
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var RADIUS = 5;

  function toPoint(item) {
    if (!item || typeof item !== 'object') return null;
    var point = { label: String(item.label === undefined ? '' : item.label), x: Math.round(Number(item.x)), y: Math.round(Number(item.y)) };
    return isFinite(point.x) && isFinite(point.y) ? point : null;
  }

  class Keypoint extends C.ShapeAnnotator {
    build() {
      var initial = C.jsonAttr(this, 'initial-value', null);
      this.initialGiven = Array.isArray(initial);
      this.points = this.shapes = this.initialGiven ? initial.map(toPoint).filter(Boolean) : [];
      this.nouns = ['point', 'points'];
      this.dragging = null;
      super.build();
    }

    get value() {
      return {
        inputImageProperties: this.inputImageProperties,
        keypoints: (this.points || []).map(function (p) {
          return { label: p.label, x: p.x, y: p.y };
        }),
      };
    }

    helpText() {
      return 'Click the image to place a point with the chosen label. Drag a point to move it; click it to select it, ' +
        'then change its label under the labels, or Delete removes it. Ctrl+Z undoes, Shift+Ctrl+Z redoes. ' +
        'Wheel zooms; Space-drag pans.';
    }

    _pointAt(p, e) {
      var reach = e.pointerType === 'touch' ? 14 : 8;
      for (var i = this.points.length - 1; i >= 0; i--) {
        var q = this.points[i];
        if (Math.abs(this.sx(q.x) - p.sx) <= reach && Math.abs(this.sy(q.y) - p.sy) <= reach) return i;
      }
      return -1;
    }

    cursorAt(p, e) {
      return this.dragging || this._pointAt(p, e) >= 0 ? 'move' : 'crosshair';
    }

    onPointerDown(p, e) {
      var hit = this._pointAt(p, e);
      if (hit >= 0) {
        this.select(hit);
        this.dragging = { placed: false };
        return true;
      }
      if (!this._labels.length || p.x < 0 || p.y < 0 || p.x > this.naturalWidth || p.y > this.naturalHeight) return false;
      // The new point follows the pointer until it is let go, then is let go itself.
      this.points.push({ label: this._labels[this.activeLabel], x: Math.round(p.x), y: Math.round(p.y) });
      this.select(this.points.length - 1);
      this.dragging = { placed: true };
      return true;
    }

    onPointerMove(p) {
      if (!this.dragging || this.selected < 0) return;
      var q = this.points[this.selected];
      q.x = Math.round(this.clampX(p.x));
      q.y = Math.round(this.clampY(p.y));
      this.invalidate(C.OVERLAY);
    }

    onPointerUp() {
      if (this.dragging && this.dragging.placed) this.select(-1);
      this.dragging = null;
      this.commit();
    }

    _drawPoint(ctx, q, selected) {
      ctx.beginPath();
      ctx.arc(this.sx(q.x), this.sy(q.y), selected ? RADIUS + 2 : RADIUS, 0, Math.PI * 2);
      ctx.fillStyle = this.colorOf(q.label);
      ctx.fill();
      ctx.lineWidth = selected ? 3 : 1.5;
      ctx.strokeStyle = '#fff';
      ctx.stroke();
    }

    drawLayer(ctx) {
      var self = this;
      this.points.forEach(function (q, i) {
        if (i !== self.selected) self._drawPoint(ctx, q, false);
      });
    }

    drawOverlay(ctx) {
      if (this.selected < 0) return this.areaOf([]);
      var q = this.points[this.selected];
      var x = this.sx(q.x);
      var y = this.sy(q.y);
      this._drawPoint(ctx, q, true);
      var tagWidth = this.drawTag(ctx, q.label, this.colorOf(q.label), x + 10, y - 4);
      return this.areaOf([[x - 10, y - 20, x + 10 + tagWidth, y + 16]]);
    }
  }

  customElements.define('crowd-keypoint', Keypoint);
})();
