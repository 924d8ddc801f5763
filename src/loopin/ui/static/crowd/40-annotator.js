// The image annotation base shared by crowd-bounding-box, crowd-keypoint, crowd-polygon and the
// segmentation elements: image loading, zoom and pan, the label list, keyboard shortcuts and
// drawing on three stacked canvases (image, shapes at rest, shapes being edited), redrawn only
// in requestAnimationFrame and only the layers that changed. No DOM node per shape: a thousand
// boxes are a thousand strokeRect calls, not a thousand elements, and while one shape is being
// dragged only the top canvas, which holds that shape alone, is redrawn.
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  var BASE = 1;
  var LAYER = 2;
  var OVERLAY = 4;
  var ALL = BASE | LAYER | OVERLAY;
  var SEARCHABLE = 10; // longer label lists get a search field

  C.ImageAnnotator = class extends C.Element {
    // -- labels (usable before the element is built: templates set .labels early) --

    get labels() {
      return (this._labels || C.labelList(C.jsonAttr(this, 'labels', []))).slice();
    }

    set labels(list) {
      this._labels = C.labelList(list);
      if (!this._built) return;
      this.activeLabel = Math.max(0, Math.min(this.activeLabel, this._labels.length - 1));
      this._renderLabels();
      this.invalidate(LAYER | OVERLAY);
    }

    get _submittableValue() {
      return this.value;
    }

    colorOf(label) {
      return C.color(this._labels.indexOf(label));
    }

    // -- building --

    build() {
      var self = this;
      var regions = C.takeRegions(this, ['full-instructions', 'short-instructions']);
      var extra = Array.prototype.slice.call(this.childNodes);
      this._labels = this.labels;
      this.activeLabel = 0;
      this.view = { scale: 1, x: 0, y: 0, fitted: true };
      this.naturalWidth = 0;
      this.naturalHeight = 0;
      this._dirty = 0;
      this._panMode = false;

      this.canvases = [0, 1, 2].map(function (i) {
        return C.h('canvas.lc-canvas' + (i === 2 ? '.lc-top' : ''));
      });
      this.stage = C.h('div.lc-stage', { tabindex: '0' }, this.canvases.concat([(this._message = C.h('p.lc-stage-message', { text: 'Loading the image…' }))]));
      this._panButton = this._tool('Pan', 'Drag the image (or hold Space, or drag with the middle button)', function () {
        self._panMode = !self._panMode;
        self._panButton.setAttribute('aria-pressed', String(self._panMode));
      });
      this._panButton.setAttribute('aria-pressed', 'false');
      var toolbar = C.h('div.lc-toolbar', {}, this.tools().concat([
        C.h('span.lc-spacer'),
        this._tool('−', 'Zoom out (-)', function () { self.zoomBy(1 / 1.25); }),
        this._tool('+', 'Zoom in (+)', function () { self.zoomBy(1.25); }),
        this._tool('Fit', 'Show the whole image', function () { self.fit(); }),
        this._panButton,
      ]));
      this._labelBox = C.h('div.lc-labels', { role: 'listbox', 'aria-label': 'Labels' });
      this._search = C.h('input.lc-input.lc-label-search', { type: 'search', placeholder: 'Search labels', 'aria-label': 'Search labels' });
      this._search.addEventListener('input', function () {
        self._filterLabels();
      });
      this._search.addEventListener('keydown', function (e) {
        if (e.key !== 'Enter') return;
        e.preventDefault(); // Enter takes the first label that matches
        var first = self._labelBox.querySelector('.lc-label:not([hidden])');
        if (first) first.click();
      });
      this._status = C.h('p.lc-status', { 'aria-live': 'polite' });
      C.layout(
        this,
        this.getAttribute('header'),
        [toolbar, this.stage, C.h('p.lc-help', { text: this.helpText() })],
        [C.h('h3.lc-side-title', { text: 'Labels' }), this._search, this._labelBox, this._status]
          .concat(this.panel(), [C.instructions(regions, extra)])
      );
      this._renderLabels();
      this._listen();
      new ResizeObserver(function () {
        self._resize();
      }).observe(this.stage);
      this._load();
      if (!C.keyTarget) C.keyTarget = this;
    }

    _tool(text, title, onclick) {
      return C.h('button.lc-tool', { type: 'button', title: title, 'aria-label': title, text: text, onclick: onclick });
    }

    _renderLabels() {
      var self = this;
      this._labelBox.textContent = '';
      if (!this._labels.length) {
        this._labelBox.appendChild(C.h('p.lc-muted', { text: 'No labels yet.' }));
      }
      this._search.hidden = this._labels.length <= SEARCHABLE;
      this._labels.forEach(function (label, i) {
        var chip = C.h('button.lc-label', {
          'data-label': label,
          type: 'button',
          role: 'option',
          'aria-selected': String(i === self.activeLabel),
          onclick: function () {
            self.pickLabel(i);
          },
        }, [
          C.h('span.lc-swatch', { style: 'background:' + C.color(i) }),
          i < 10 ? C.h('kbd', { text: String((i + 1) % 10) }) : null,
          C.h('span', { text: label }),
        ]);
        self._labelBox.appendChild(chip);
      });
      this._filterLabels();
    }

    /** Long label lists are searchable: the chips whose label holds the search text stay. */
    _filterLabels() {
      var text = this._search.hidden ? '' : this._search.value.trim().toLowerCase();
      Array.prototype.forEach.call(this._labelBox.querySelectorAll('.lc-label'), function (chip) {
        chip.hidden = text !== '' && chip.getAttribute('data-label').toLowerCase().indexOf(text) < 0;
      });
    }

    pickLabel(i) {
      if (i < 0 || i >= this._labels.length) return;
      this.activeLabel = i;
      Array.prototype.forEach.call(this._labelBox.children, function (chip, j) {
        chip.setAttribute('aria-selected', String(i === j));
      });
      this.onLabelPicked(this._labels[i]);
    }

    connectedCallback() {
      // Start fetching the photo while the rest of the page is still being parsed.
      if (!this._img && this.getAttribute('src')) {
        this._img = new Image();
        this._img.decoding = 'async';
        this._img.src = this.getAttribute('src');
      }
      super.connectedCallback();
    }

    _load() {
      var self = this;
      var img = this._img;
      if (!img) {
        this._message.textContent = 'This task has no image.';
        return;
      }
      // Once the size is known the shapes can be drawn; the photo follows when decoded.
      // decode() prepares the pixels off the main thread, so drawing it never stalls a frame.
      var loaded = function () {
        self.image = img;
        self.naturalWidth = img.naturalWidth;
        self.naturalHeight = img.naturalHeight;
        self.onImageLoaded();
        self.fit();
        img.decode().then(function () {
          self._decoded = true;
          self._message.hidden = true;
          self.invalidate(BASE);
        });
      };
      var failed = function () {
        self._message.textContent = 'The image could not be loaded. Release or decline this task.';
      };
      if (img.complete) {
        if (img.naturalWidth) loaded();
        else failed();
      } else {
        img.addEventListener('load', loaded);
        img.addEventListener('error', failed);
      }
    }

    // -- view --

    _resize() {
      var rect = this.stage.getBoundingClientRect();
      this.cssWidth = rect.width;
      this.cssHeight = rect.height;
      this.dpr = Math.min(window.devicePixelRatio || 1, 2);
      var dpr = this.dpr;
      this.canvases.forEach(function (canvas) {
        canvas.width = Math.max(1, Math.round(rect.width * dpr));
        canvas.height = Math.max(1, Math.round(rect.height * dpr));
      });
      this._overlayArea = null;
      if (this.view.fitted) this.fit();
      else this.invalidate(ALL);
    }

    fit() {
      if (!this.naturalWidth || !this.cssWidth) return;
      var scale = Math.min(this.cssWidth / this.naturalWidth, this.cssHeight / this.naturalHeight);
      this.view = {
        scale: scale,
        x: (this.cssWidth - this.naturalWidth * scale) / 2,
        y: (this.cssHeight - this.naturalHeight * scale) / 2,
        fitted: true,
      };
      this._fitScale = scale;
      this.invalidate(ALL);
    }

    zoomBy(factor, cx, cy) {
      if (!this.naturalWidth) return;
      var v = this.view;
      cx = cx === undefined ? this.cssWidth / 2 : cx;
      cy = cy === undefined ? this.cssHeight / 2 : cy;
      var scale = Math.max(this._fitScale * 0.5, Math.min(Math.max(20, this._fitScale * 4), v.scale * factor));
      var k = scale / v.scale;
      this.view = { scale: scale, x: cx - (cx - v.x) * k, y: cy - (cy - v.y) * k, fitted: false };
      this.invalidate(ALL);
    }

    panBy(dx, dy) {
      this.view = { scale: this.view.scale, x: this.view.x + dx, y: this.view.y + dy, fitted: false };
      this.invalidate(ALL);
    }

    /** Screen (CSS px, relative to the stage) of an image point, and back. */
    sx(x) {
      return this.view.x + x * this.view.scale;
    }

    sy(y) {
      return this.view.y + y * this.view.scale;
    }

    imagePoint(e) {
      var rect = this.stage.getBoundingClientRect();
      var x = e.clientX - rect.left;
      var y = e.clientY - rect.top;
      return { x: (x - this.view.x) / this.view.scale, y: (y - this.view.y) / this.view.scale, sx: x, sy: y };
    }

    clampX(x) {
      return Math.max(0, Math.min(this.naturalWidth, x));
    }

    clampY(y) {
      return Math.max(0, Math.min(this.naturalHeight, y));
    }

    // -- drawing --

    invalidate(layers) {
      var self = this;
      this._dirty |= layers === undefined ? OVERLAY : layers;
      if (this._frame) return;
      this._frame = requestAnimationFrame(function () {
        self._frame = 0;
        self._draw();
      });
    }

    _draw() {
      var dirty = this._dirty;
      this._dirty = 0;
      if (!this.naturalWidth || !this.cssWidth) return;
      var self = this;
      [BASE, LAYER, OVERLAY].forEach(function (bit, i) {
        if (!(dirty & bit)) return;
        var ctx = self.canvases[i].getContext('2d');
        ctx.setTransform(self.dpr, 0, 0, self.dpr, 0, 0);
        if (bit !== OVERLAY) {
          ctx.clearRect(0, 0, self.cssWidth, self.cssHeight);
          if (bit === BASE) self._drawImage(ctx);
          else self.drawLayer(ctx);
          return;
        }
        // The top canvas changes every frame of a drag: clear and redraw only the area the
        // shape covers, so the browser repaints and composites a small rectangle.
        var a = self._overlayArea;
        if (a) ctx.clearRect(a.x, a.y, a.w, a.h);
        else ctx.clearRect(0, 0, self.cssWidth, self.cssHeight);
        self._overlayArea = self.drawOverlay(ctx) || null;
      });
      var status = this.statusText();
      if (this._status.textContent !== status) this._status.textContent = status; // no layout per frame
      // For scripts, tests and benchmarks: when the shapes, then the photo, were first on screen.
      if (!this.hasAttribute('data-drawn')) {
        this.drawnAt = performance.timeOrigin + performance.now();
        this.setAttribute('data-drawn', '');
      }
      if (this._decoded && !this.hasAttribute('data-image-drawn')) {
        this.imageDrawnAt = performance.timeOrigin + performance.now();
        this.setAttribute('data-image-drawn', '');
      }
    }

    _drawImage(ctx) {
      if (!this._decoded) return;
      var v = this.view;
      ctx.imageSmoothingEnabled = v.scale < 2;
      ctx.drawImage(this.image, v.x, v.y, this.naturalWidth * v.scale, this.naturalHeight * v.scale);
    }

    /** A label's name on a coloured tag at a screen point. Each tag is drawn once into a
     * small canvas and then copied: a copy costs far less than laying out text again, which
     * matters with hundreds of tags on screen. */
    drawTag(ctx, text, color, x, y) {
      var key = text + '\u0000' + color;
      var cache = (this._tags = this._tags || new Map());
      var tag = cache.get(key);
      if (!tag || tag.dpr !== this.dpr) {
        if (cache.size > 500) cache.clear();
        var probe = document.createElement('canvas').getContext('2d');
        probe.font = '12px system-ui, sans-serif';
        var w = Math.ceil(probe.measureText(text).width) + 8;
        var canvas = C.h('canvas', { width: w * this.dpr, height: 16 * this.dpr });
        var c = canvas.getContext('2d');
        c.scale(this.dpr, this.dpr);
        c.fillStyle = color;
        c.fillRect(0, 0, w, 16);
        c.font = '12px system-ui, sans-serif';
        c.fillStyle = '#fff';
        c.fillText(text, 4, 12);
        tag = { canvas: canvas, width: w, dpr: this.dpr };
        cache.set(key, tag);
      }
      ctx.drawImage(tag.canvas, x, y < 16 ? y : y - 16, tag.width, 16);
      return tag.width;
    }

    /** The area {x, y, w, h} covering screen rectangles [x1, y1, x2, y2], with a margin for
     * line widths and handles; drawOverlay returns it (or nothing: the whole canvas). */
    areaOf(rects) {
      var x1 = Infinity;
      var y1 = Infinity;
      var x2 = -Infinity;
      var y2 = -Infinity;
      rects.forEach(function (r) {
        x1 = Math.min(x1, r[0], r[2]);
        y1 = Math.min(y1, r[1], r[3]);
        x2 = Math.max(x2, r[0], r[2]);
        y2 = Math.max(y2, r[1], r[3]);
      });
      if (x1 === Infinity) return { x: 0, y: 0, w: 0, h: 0 };
      return { x: Math.floor(x1) - 8, y: Math.floor(y1) - 8, w: Math.ceil(x2 - x1) + 16, h: Math.ceil(y2 - y1) + 16 };
    }

    // -- input --

    _listen() {
      var self = this;
      var top = this.canvases[2];
      var pan = null;
      top.addEventListener('pointerdown', function (e) {
        C.keyTarget = self;
        self.stage.focus({ preventScroll: true });
        if (!self.naturalWidth) return;
        if (e.button === 1 || e.button === 2 || self._panMode || self._spaceDown) {
          pan = { x: e.clientX, y: e.clientY };
        } else if (e.button === 0 && self.onPointerDown(self.imagePoint(e), e)) {
          self._gesture = true;
        } else {
          return;
        }
        top.setPointerCapture(e.pointerId);
        e.preventDefault();
      });
      top.addEventListener('pointermove', function (e) {
        if (pan) {
          self.panBy(e.clientX - pan.x, e.clientY - pan.y);
          pan = { x: e.clientX, y: e.clientY };
        } else if (self.naturalWidth) {
          var p = self.imagePoint(e);
          if (self._gesture) self.onPointerMove(p, e);
          else self.onHover(p, e);
          var cursor = self._panMode || self._spaceDown ? 'grab' : self.cursorAt(p, e);
          if (top.style.cursor !== cursor) top.style.cursor = cursor;
        }
      });
      var end = function (e) {
        if (pan) {
          pan = null;
        } else if (self._gesture) {
          self._gesture = false;
          self.onPointerUp(self.imagePoint(e), e);
        }
      };
      top.addEventListener('pointerup', end);
      top.addEventListener('pointercancel', end);
      top.addEventListener('dblclick', function (e) {
        if (self.naturalWidth) self.onDoubleClick(self.imagePoint(e), e);
      });
      top.addEventListener('contextmenu', function (e) {
        e.preventDefault();
      });
      top.addEventListener(
        'wheel',
        function (e) {
          e.preventDefault();
          var p = self.imagePoint(e);
          // Pinch gestures arrive as ctrl+wheel with small steps: the same formula serves both.
          self.zoomBy(Math.exp(-e.deltaY * (e.ctrlKey ? 0.01 : 0.0015)), p.sx, p.sy);
        },
        { passive: false }
      );
      document.addEventListener('keyup', function (e) {
        if (e.key === ' ') self._spaceDown = false;
      });
    }

    onKey(e) {
      if (e.key === ' ') {
        this._spaceDown = true;
        return true;
      }
      if (/^[0-9]$/.test(e.key)) {
        this.pickLabel((Number(e.key) + 9) % 10);
        return true;
      }
      if (e.key === '+' || e.key === '=') {
        this.zoomBy(1.25);
        return true;
      }
      if (e.key === '-') {
        this.zoomBy(1 / 1.25);
        return true;
      }
      return this.onToolKey(e);
    }

    get inputImageProperties() {
      return { height: this.naturalHeight, width: this.naturalWidth };
    }

    _crowdValidate() {
      if (!this.naturalWidth) return 'The image has not loaded, so there is nothing to submit. Release or decline this task.';
      return '';
    }

    _crowdAnswer() {
      return this.value;
    }

    // -- what subclasses provide --

    tools() {
      return [];
    }

    /** Nodes for the side panel, under the labels. */
    panel() {
      return [];
    }

    helpText() {
      return '';
    }

    statusText() {
      return '';
    }

    onImageLoaded() {}

    onLabelPicked() {}

    onPointerDown() {
      return false;
    }

    onPointerMove() {}

    onPointerUp() {}

    onHover() {}

    onDoubleClick() {}

    onToolKey() {
      return false;
    }

    cursorAt() {
      return 'crosshair';
    }

    drawLayer() {}

    drawOverlay() {}
  };

  C.LAYER = LAYER;
  C.OVERLAY = OVERLAY;
})();
