// A2I's two built-in task types' elements. They carry no `name`: their answer goes under
// the task type's key, as A2I writes it.
//   crowd-rekognition-detect-moderation-labels:
//     {"AWS/Rekognition/DetectModerationLabels/Image/V3": {"moderationLabels": [chosen categories]}}
//   crowd-textract-analyze-document:
//     {"AWS/Textract/AnalyzeDocument/Forms/V1": {"blocks": [{blockType, id, relationships, entityTypes, text}]}}
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  /** A field of a Textract block or Rekognition label in either casing (A2I's input uses
   * camelCase, the element docs PascalCase). */
  function field(obj, name) {
    if (!obj || typeof obj !== 'object') return undefined;
    if (obj[name] !== undefined) return obj[name];
    var pascal = name.charAt(0).toUpperCase() + name.slice(1);
    return obj[pascal];
  }

  class ModerationLabels extends C.Element {
    get _answerKey() {
      return 'AWS/Rekognition/DetectModerationLabels/Image/V3';
    }

    build() {
      var self = this;
      var regions = C.takeRegions(this, ['full-instructions', 'short-instructions']);
      var categories = C.jsonAttr(this, 'categories', []);
      this.categories = (Array.isArray(categories) ? categories : []).filter(function (c) {
        return c !== null && c !== undefined && c !== '';
      });
      var exclusion = C.jsonAttr(this, 'exclusion-category', null);
      this.exclusion = exclusion && typeof exclusion === 'object' ? String(exclusion.text || exclusion.name || 'None') : exclusion ? String(exclusion) : 'None of these';
      this.chosen = [];
      this.excluded = false;
      this.buttons = this.categories.map(function (category, i) {
        var label = typeof category === 'object' ? String(field(category, 'name') || '') : String(category);
        var parent = typeof category === 'object' ? field(category, 'parentName') : '';
        return C.h('button.lc-choice-button', { type: 'button', 'aria-pressed': 'false', onclick: function () { self.toggle(i); } }, [
          i < 9 ? C.h('kbd', { text: String(i + 1) }) : null,
          C.h('span', { text: label + (parent ? ' (' + parent + ')' : '') }),
        ]);
      });
      this.exclusionButton = C.h('button.lc-choice-button.lc-exclusion', { type: 'button', 'aria-pressed': 'false', text: this.exclusion,
        onclick: function () { self.exclude(); } });
      var src = this.getAttribute('src');
      C.layout(this, this.getAttribute('header'),
        [src ? C.h('div.lc-target', {}, [C.h('img.lc-target-image', { src: src, alt: '' })]) : null],
        [C.h('h3.lc-side-title', { text: 'Choose all that apply' }), C.h('div.lc-choices', { role: 'group' }, this.buttons.concat([this.exclusionButton])), C.instructions(regions)]);
      this.addEventListener('pointerdown', function () { C.keyTarget = self; });
      if (!C.keyTarget) C.keyTarget = this;
    }

    toggle(i) {
      if (this.excluded) return; // the exclusion disables the categories until chosen again
      var at = this.chosen.indexOf(i);
      if (at >= 0) this.chosen.splice(at, 1);
      else this.chosen.push(i);
      this._show();
    }

    exclude() {
      this.excluded = !this.excluded;
      if (this.excluded) this.chosen = [];
      this._show();
    }

    _show() {
      var self = this;
      this.buttons.forEach(function (b, i) {
        b.setAttribute('aria-pressed', String(self.chosen.indexOf(i) >= 0));
        b.disabled = self.excluded;
      });
      this.exclusionButton.setAttribute('aria-pressed', String(this.excluded));
      C.clearProblem(this);
    }

    onKey(e) {
      var i = '123456789'.indexOf(e.key);
      if (i < 0 || i >= this.categories.length) return false;
      this.toggle(i);
      return true;
    }

    get value() {
      var self = this;
      // Object categories come back whole, strings as strings; in the order they were offered.
      var labels = this.chosen.slice().sort(function (a, b) { return a - b; }).map(function (i) { return self.categories[i]; });
      return { moderationLabels: labels };
    }

    _crowdValidate() {
      return this.chosen.length || this.excluded ? '' : 'Choose the categories the image shows, or "' + this.exclusion + '".';
    }

    _crowdAnswer() {
      return this.value;
    }
  }

  class AnalyzeDocument extends C.Element {
    get _answerKey() {
      return 'AWS/Textract/AnalyzeDocument/Forms/V1';
    }

    build() {
      var self = this;
      var regions = C.takeRegions(this, ['full-instructions', 'short-instructions']);
      var blocks = C.jsonAttr(this, 'initial-value', []);
      if (blocks && !Array.isArray(blocks) && Array.isArray(field(blocks, 'blocks'))) blocks = field(blocks, 'blocks');
      this.blocks = Array.isArray(blocks) ? blocks.filter(function (b) { return b && typeof b === 'object'; }) : [];
      this.byId = {};
      this.blocks.forEach(function (b) { self.byId[field(b, 'id')] = b; });
      this.noKeyEdit = this.hasAttribute('no-key-edit');
      var keys = C.jsonAttr(this, 'keys', []);
      this.importantKeys = (Array.isArray(keys) ? keys : []).map(function (k) {
        if (k && typeof k === 'object') return { key: String(field(k, 'importantFormKey') || ''), aliases: (field(k, 'importantFormKeyAliases') || []).map(String) };
        return { key: String(k), aliases: [] };
      }).filter(function (k) { return k.key; });

      // One row per KEY block with its VALUE block.
      this.pairs = this.blocks.filter(function (b) {
        return field(b, 'blockType') === 'KEY_VALUE_SET' && (field(b, 'entityTypes') || []).indexOf('KEY') >= 0;
      }).map(function (key) {
        var valueId = self._related(key, 'VALUE')[0];
        return { key: key, value: valueId !== undefined ? self.byId[valueId] : null };
      });
      var names = this.pairs.map(function (p) { return self._text(p.key).toLowerCase(); });
      this.missing = this.importantKeys.filter(function (k) {
        return [k.key].concat(k.aliases).every(function (n) { return names.indexOf(n.toLowerCase()) < 0; });
      });

      this.image = C.h('img.lc-doc-image', { src: this.getAttribute('src') || '', alt: 'The document' });
      this.marks = C.h('div.lc-doc-marks');
      var rows = this.pairs.map(function (pair, i) { return self._row(pair, i); });
      var missingRows = this.missing.map(function (k) { return self._missingRow(k); });
      C.layout(this, this.getAttribute('header'),
        [C.h('div.lc-doc', {}, [this.image, this.marks])],
        [C.h('h3.lc-side-title', { text: 'Key-value pairs' })].concat(rows, missingRows, [C.instructions(regions)]));
      this.pairs.forEach(function (pair, i) { self._mark(pair, i); });
    }

    _related(block, type) {
      var ids = [];
      (field(block, 'relationships') || []).forEach(function (r) {
        if (field(r, 'type') === type) ids = ids.concat(field(r, 'ids') || []);
      });
      return ids;
    }

    /** A block's text: its own, or its CHILD words joined. */
    _text(block) {
      if (!block) return '';
      var own = field(block, 'text');
      if (own !== undefined && own !== null) return String(own);
      var self = this;
      return this._related(block, 'CHILD').map(function (id) { return field(self.byId[id], 'text') || ''; }).filter(Boolean).join(' ');
    }

    _row(pair, i) {
      var self = this;
      pair.keyInput = C.h('input.lc-input', { type: 'text', 'aria-label': 'Key ' + (i + 1) });
      pair.keyInput.value = this._text(pair.key);
      pair.keyInput.readOnly = this.noKeyEdit;
      pair.valueInput = C.h('input.lc-input', { type: 'text', 'aria-label': 'Value of ' + pair.keyInput.value });
      pair.valueInput.value = this._text(pair.value);
      pair.notPair = C.h('input', { type: 'checkbox' });
      pair.blank = C.h('input', { type: 'checkbox' });
      pair.blank.addEventListener('change', function () {
        pair.valueInput.disabled = pair.blank.checked;
      });
      var row = C.h('fieldset.lc-kv', { 'data-index': i }, [
        C.h('label.lc-field', {}, [C.h('span.lc-field-label', { text: 'Key' }), pair.keyInput]),
        C.h('label.lc-field', {}, [C.h('span.lc-field-label', { text: 'Value' }), pair.valueInput]),
        C.h('label.lc-choice', {}, [pair.blank, 'Value is blank']),
        C.h('label.lc-choice', {}, [pair.notPair, 'Not a key-value pair']),
      ]);
      row.addEventListener('focusin', function () { self._highlight(i); });
      return row;
    }

    _missingRow(k) {
      k.valueInput = C.h('input.lc-input', { type: 'text', 'aria-label': 'Value of ' + k.key });
      k.notFound = C.h('input', { type: 'checkbox' });
      k.notFound.addEventListener('change', function () { k.valueInput.disabled = k.notFound.checked; });
      return C.h('fieldset.lc-kv.lc-kv-missing', {}, [
        C.h('p.lc-muted', { text: '"' + k.key + '" was not found by the model. Type its value from the document:' }),
        C.h('label.lc-field', {}, [C.h('span.lc-field-label', { text: k.key }), k.valueInput]),
        C.h('label.lc-choice', {}, [k.notFound, 'Key not found']),
      ]);
    }

    /** A box over the document for the pair's key and value (relative coordinates). */
    _mark(pair, i) {
      var self = this;
      [pair.key, pair.value].forEach(function (block, j) {
        var box = field(field(block, 'geometry'), 'boundingBox');
        if (!box) return;
        var pct = function (v) { return (Number(v) * 100).toFixed(3) + '%'; };
        self.marks.appendChild(C.h('div.lc-doc-mark' + (j ? '.lc-doc-value' : ''), {
          'data-index': i,
          style: 'left:' + pct(field(box, 'left')) + ';top:' + pct(field(box, 'top')) + ';width:' + pct(field(box, 'width')) + ';height:' + pct(field(box, 'height')),
        }));
      });
    }

    _highlight(i) {
      Array.prototype.forEach.call(this.marks.children, function (m) {
        m.classList.toggle('lc-active', Number(m.dataset.index) === i);
      });
    }

    _out(block, text) {
      var out = { blockType: 'KEY_VALUE_SET', id: String(field(block, 'id')) };
      var rel = (field(block, 'relationships') || []).map(function (r) {
        return { type: field(r, 'type'), ids: (field(r, 'ids') || []).slice() };
      });
      if (rel.length) out.relationships = rel;
      out.entityTypes = (field(block, 'entityTypes') || []).slice();
      out.text = text;
      return out;
    }

    get value() {
      var self = this;
      var blocks = [];
      (this.pairs || []).forEach(function (pair) {
        if (pair.notPair.checked) return;
        blocks.push(self._out(pair.key, pair.keyInput.value.trim()));
        if (pair.value) blocks.push(self._out(pair.value, pair.blank.checked ? '' : pair.valueInput.value.trim()));
      });
      (this.missing || []).forEach(function (k, n) {
        var text = k.valueInput.value.trim();
        if (k.notFound.checked || !text) return;
        var keyId = 'loopin-key-' + n;
        var valueId = 'loopin-value-' + n;
        blocks.push({ blockType: 'KEY_VALUE_SET', id: keyId, relationships: [{ type: 'VALUE', ids: [valueId] }], entityTypes: ['KEY'], text: k.key });
        blocks.push({ blockType: 'KEY_VALUE_SET', id: valueId, entityTypes: ['VALUE'], text: text });
      });
      return { blocks: blocks };
    }

    _crowdValidate() {
      var open = (this.missing || []).filter(function (k) { return !k.notFound.checked && !k.valueInput.value.trim(); });
      return open.length ? 'Type the value of "' + open[0].key + '", or choose "Key not found".' : '';
    }

    _crowdAnswer() {
      return this.value;
    }
  }

  customElements.define('crowd-rekognition-detect-moderation-labels', ModerationLabels);
  customElements.define('crowd-textract-analyze-document', AnalyzeDocument);
})();
