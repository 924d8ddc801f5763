// crowd-semantic-segmentation and crowd-instance-segmentation: paint labels onto the image
// with a brush. The mask is one byte per image pixel (0: unlabelled, k: class or instance k),
// so the submitted PNG holds exactly the palette colours, with no blended edges. Unlabelled
// pixels are white, as in Ground Truth's label images.
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  function rgb(hex) {
    var n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  class Segmentation extends C.ImageAnnotator {
    build() {
      this.brush = 16; // radius in screen pixels
      this.erasing = false;
      this._modified = false;
      this.instances = []; // instance mode: [{label}]
      this.current = -1;
      super.build();
    }

    get instanceMode() {
      return false;
    }

    tools() {
      var self = this;
      this._brushButton = this._tool('Brush', 'Paint with the chosen label', function () {
        self._setErasing(false);
      });
      this._eraseButton = this._tool('Eraser', 'Erase labels', function () {
        self._setErasing(true);
      });
      var size = C.h('input.lc-range', { type: 'range', min: 2, max: 80, value: this.brush, 'aria-label': 'Brush size' });
      size.addEventListener('input', function () {
        self.brush = Number(size.value);
      });
      var tools = [this._brushButton, this._eraseButton, C.h('label.lc-inline', {}, ['Size', size])];
      if (this.instanceMode) {
        tools.push(this._tool('New instance', 'Start a new object of the chosen label', function () {
          self._newInstance();
        }));
      }
      this._setErasing(false);
      return tools;
    }

    _setErasing(on) {
      this.erasing = on;
      this._brushButton.setAttribute('aria-pressed', String(!on));
      this._eraseButton.setAttribute('aria-pressed', String(on));
    }

    helpText() {
      return 'Choose a label, then paint over the object with the brush; the eraser removes paint. ' +
        (this.instanceMode ? 'Each object is an instance: press New instance (or pick a label) before painting the next one. ' : '') +
        'Wheel zooms; Space-drag pans.';
    }

    statusText() {
      if (!this.instanceMode) return this.erasing ? 'Erasing' : 'Painting: ' + (this._labels[this.activeLabel] || '—');
      return this.instances.length + (this.instances.length === 1 ? ' instance' : ' instances') +
        (this.current >= 0 ? ' · painting ' + this.instances[this.current].label + ' #' + (this.current + 1) : '');
    }

    onImageLoaded() {
      var w = this.naturalWidth;
      var h = this.naturalHeight;
      this.map = new Uint8Array(w * h);
      this.maskCanvas = C.h('canvas', { width: w, height: h });
      this.maskCtx = this.maskCanvas.getContext('2d');
      this.maskData = this.maskCtx.createImageData(w, h);
      this._rgbCache = {};
      this.dirty = null;
      var initial = C.jsonAttr(this, 'initial-value', null);
      if (initial && initial.src && !this.instanceMode) this._loadInitial(initial);
    }

    _loadInitial(initial) {
      var self = this;
      this._initialGiven = true;
      var mappings = initial.labelMappings || {};
      var img = new Image();
      img.src = initial.src;
      img.decode().then(function () {
        var probe = C.h('canvas', { width: self.naturalWidth, height: self.naturalHeight }).getContext('2d');
        probe.drawImage(img, 0, 0, self.naturalWidth, self.naturalHeight);
        var pixels;
        try {
          pixels = probe.getImageData(0, 0, self.naturalWidth, self.naturalHeight).data;
        } catch (err) {
          console.warn('crowd-semantic-segmentation: the initial mask cannot be read (it needs CORS): ' + err.message);
          return;
        }
        var byColor = {};
        Object.keys(mappings).forEach(function (label) {
          var index = self._labels.indexOf(label);
          if (index >= 0 && mappings[label] && mappings[label].color) byColor[mappings[label].color.toLowerCase()] = index + 1;
        });
        for (var i = 0; i < self.map.length; i++) {
          var hex = '#' + ((1 << 24) | (pixels[i * 4] << 16) | (pixels[i * 4 + 1] << 8) | pixels[i * 4 + 2]).toString(16).slice(1);
          var v = byColor[hex];
          if (v) self._set(i, v);
        }
        self.dirty = { x0: 0, y0: 0, x1: self.naturalWidth - 1, y1: self.naturalHeight - 1 };
        self.invalidate(C.LAYER);
      });
    }

    _set(i, v) {
      this.map[i] = v;
      var d = this.maskData.data;
      var o = i * 4;
      if (v) {
        var c = this._rgbCache[v] || (this._rgbCache[v] = rgb(C.color(v - 1)));
        d[o] = c[0];
        d[o + 1] = c[1];
        d[o + 2] = c[2];
        d[o + 3] = 255;
      } else {
        d[o + 3] = 0;
      }
    }

    _stamp(cx, cy, r, v) {
      var w = this.naturalWidth;
      var x0 = Math.max(0, Math.floor(cx - r));
      var x1 = Math.min(w - 1, Math.ceil(cx + r));
      var y0 = Math.max(0, Math.floor(cy - r));
      var y1 = Math.min(this.naturalHeight - 1, Math.ceil(cy + r));
      if (x0 > x1 || y0 > y1) return;
      var r2 = r * r;
      for (var y = y0; y <= y1; y++) {
        var dy = y + 0.5 - cy;
        for (var x = x0; x <= x1; x++) {
          var dx = x + 0.5 - cx;
          if (dx * dx + dy * dy <= r2) this._set(y * w + x, v);
        }
      }
      var d = this.dirty;
      this.dirty = d
        ? { x0: Math.min(d.x0, x0), y0: Math.min(d.y0, y0), x1: Math.max(d.x1, x1), y1: Math.max(d.y1, y1) }
        : { x0: x0, y0: y0, x1: x1, y1: y1 };
    }

    _strokeTo(p) {
      var v = this.erasing ? 0 : this._paintValue();
      if (v === null) return;
      var r = Math.max(0.5, this.brush / this.view.scale);
      var from = this.last || p;
      var steps = Math.max(1, Math.ceil(Math.hypot(p.x - from.x, p.y - from.y) / Math.max(0.5, r / 2)));
      for (var i = 1; i <= steps; i++) {
        this._stamp(from.x + ((p.x - from.x) * i) / steps, from.y + ((p.y - from.y) * i) / steps, r, v);
      }
      this.last = p;
      this._modified = true;
      this.invalidate(C.LAYER | C.OVERLAY);
    }

    _paintValue() {
      if (!this._labels.length) return null;
      if (!this.instanceMode) return this.activeLabel + 1;
      if (this.current < 0) this._newInstance();
      return this.current + 1;
    }

    _newInstance() {
      if (this.instances.length >= 255 || !this._labels.length) return;
      this.instances.push({ label: this._labels[this.activeLabel] });
      this.current = this.instances.length - 1;
      this.invalidate(C.OVERLAY);
    }

    onLabelPicked(label) {
      this._setErasing(false);
      if (!this.instanceMode) return;
      var used = this.current >= 0 && this._used()[this.current + 1];
      if (this.current >= 0 && !used) this.instances[this.current].label = label;
      else this._newInstance();
    }

    onPointerDown(p) {
      this.last = null;
      this._strokeTo(p);
      return true;
    }

    onPointerMove(p) {
      this.hover = p;
      this._strokeTo(p);
    }

    onPointerUp() {
      this.last = null;
    }

    onHover(p) {
      this.hover = p;
      this.invalidate(C.OVERLAY);
    }

    onToolKey(e) {
      if (e.key === 'e' || e.key === 'b') {
        this._setErasing(e.key === 'e');
        return true;
      }
      if (e.key === 'n' && this.instanceMode) {
        this._newInstance();
        return true;
      }
      return false;
    }

    drawLayer(ctx) {
      var d = this.dirty;
      if (d) {
        this.maskCtx.putImageData(this.maskData, 0, 0, d.x0, d.y0, d.x1 - d.x0 + 1, d.y1 - d.y0 + 1);
        this.dirty = null;
      }
      ctx.globalAlpha = 0.55;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.maskCanvas, this.view.x, this.view.y, this.naturalWidth * this.view.scale, this.naturalHeight * this.view.scale);
      ctx.globalAlpha = 1;
    }

    drawOverlay(ctx) {
      if (!this.hover) return this.areaOf([]);
      var p = this.hover;
      ctx.beginPath();
      ctx.arc(p.sx, p.sy, this.brush, 0, Math.PI * 2);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = this.erasing ? '#fff' : C.color(this.instanceMode ? Math.max(0, this.current) : this.activeLabel);
      ctx.stroke();
      return this.areaOf([[p.sx - this.brush, p.sy - this.brush, p.sx + this.brush, p.sy + this.brush]]);
    }

    _used() {
      var used = {};
      for (var i = 0; i < this.map.length; i++) used[this.map[i]] = true;
      return used;
    }

    _png() {
      var w = this.naturalWidth;
      var canvas = C.h('canvas', { width: w, height: this.naturalHeight });
      var ctx = canvas.getContext('2d');
      var out = ctx.createImageData(w, this.naturalHeight);
      var src = this.maskData.data;
      var dst = out.data;
      for (var i = 0; i < this.map.length; i++) {
        var o = i * 4;
        var painted = this.map[i] !== 0;
        dst[o] = painted ? src[o] : 255;
        dst[o + 1] = painted ? src[o + 1] : 255;
        dst[o + 2] = painted ? src[o + 2] : 255;
        dst[o + 3] = 255;
      }
      ctx.putImageData(out, 0, 0);
      return canvas.toDataURL('image/png').replace(/^data:image\/png;base64,/, '');
    }

    _crowdAnswer() {
      return this.value;
    }
  }

  class SemanticSegmentation extends Segmentation {
    get value() {
      if (!this.map) return { inputImageProperties: this.inputImageProperties, labelMappings: {}, labeledImage: { pngImageData: '' } };
      var used = this._used();
      var mappings = {};
      this._labels.forEach(function (label, i) {
        if (used[i + 1]) mappings[label] = { color: C.color(i) };
      });
      var value = { inputImageProperties: this.inputImageProperties, labelMappings: mappings, labeledImage: { pngImageData: this._png() } };
      if (this._initialGiven) value.initialValueModified = this._modified;
      return value;
    }
  }

  class InstanceSegmentation extends Segmentation {
    get instanceMode() {
      return true;
    }

    get value() {
      if (!this.map) return { inputImageProperties: this.inputImageProperties, instances: [], labeledImage: { pngImageData: '' } };
      var used = this._used();
      var instances = [];
      this.instances.forEach(function (instance, i) {
        if (used[i + 1]) instances.push({ color: C.color(i), label: instance.label });
      });
      return { inputImageProperties: this.inputImageProperties, instances: instances, labeledImage: { pngImageData: this._png() } };
    }
  }

  customElements.define('crowd-semantic-segmentation', SemanticSegmentation);
  customElements.define('crowd-instance-segmentation', InstanceSegmentation);
})();
