// crowd-keypoint: place, move, relabel and delete labelled points on an image.
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var RADIUS = 5;

  function toPoint(item) {
    if (!item || typeof item !== 'object') return null;
    var point = { label: String(item.label === undefined ? '' : item.label), x: Math.round(Number(item.x)), y: Math.round(Number(item.y)) };
    return isFinite(point.x) && isFinite(point.y) ? point : null;
  }

  class Keypoint extends C.ImageAnnotator {
    build() {
      var initial = C.jsonAttr(this, 'initial-value', null);
      this.points = Array.isArray(initial) ? initial.map(toPoint).filter(Boolean) : [];
      this.selected = -1;
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

    tools() {
      var self = this;
      this._deleteButton = this._tool('Delete point', 'Delete the selected point (Delete)', function () {
        self.deleteSelected();
      });
      this._deleteButton.disabled = true;
      return [this._deleteButton];
    }

    helpText() {
      return 'Click the image to place a point with the chosen label. Drag a point to move it; click it to select it, ' +
        'then a label or number key relabels it and Delete removes it. Wheel zooms; Space-drag pans.';
    }

    statusText() {
      var n = this.points.length;
      return n + (n === 1 ? ' point' : ' points') + (this.selected >= 0 ? ' · selected: ' + this.points[this.selected].label : '');
    }

    select(i) {
      this.selected = i;
      this._deleteButton.disabled = i < 0;
      this.invalidate(C.LAYER | C.OVERLAY);
    }

    deleteSelected() {
      if (this.selected < 0) return;
      this.points.splice(this.selected, 1);
      this.select(-1);
    }

    onLabelPicked(label) {
      if (this.selected < 0) return;
      this.points[this.selected].label = label;
      this.invalidate(C.OVERLAY);
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
        this.dragging = true;
        return true;
      }
      if (!this._labels.length || p.x < 0 || p.y < 0 || p.x > this.naturalWidth || p.y > this.naturalHeight) return false;
      this.points.push({ label: this._labels[this.activeLabel], x: Math.round(p.x), y: Math.round(p.y) });
      this.select(this.points.length - 1);
      this.dragging = true;
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
      this.dragging = null;
    }

    onToolKey(e) {
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
