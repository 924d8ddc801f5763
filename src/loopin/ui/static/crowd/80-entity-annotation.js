// crowd-entity-annotation: highlight spans of a text and label them. Offsets count Unicode
// code points, end exclusive. Outside a crowd-form the element makes its own, so it can be
// submitted.
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  class EntityAnnotation extends C.Element {
    build() {
      var self = this;
      if (!this.closest('crowd-form')) {
        // Moved in before the form is in the page, so its Submit button comes after this.
        var form = document.createElement('crowd-form');
        var parent = this.parentNode;
        var next = this.nextSibling;
        form.appendChild(this);
        parent.insertBefore(form, next);
      }
      var regions = C.takeRegions(this, ['full-instructions', 'short-instructions']);
      var extra = Array.prototype.slice.call(this.childNodes);
      this.chars = Array.from(this.getAttribute('text') || '');
      this.labelInfo = (C.jsonAttr(this, 'labels', []) || []).map(function (item) {
        if (item && typeof item === 'object') {
          var label = String(item.label);
          return { label: label, full: item.fullDisplayName || item.longDisplayName || label, short: item.shortDisplayName || label };
        }
        return { label: String(item), full: String(item), short: String(item) };
      });
      var initial = C.jsonAttr(this, 'initial-value', []);
      this.entities = (Array.isArray(initial) ? initial : [])
        .map(function (e) {
          return { label: String(e.label), startOffset: Math.round(e.startOffset), endOffset: Math.round(e.endOffset) };
        })
        .filter(function (e) {
          return e.startOffset >= 0 && e.endOffset > e.startOffset && e.endOffset <= self.chars.length;
        });
      this.activeLabel = 0;
      this.selected = -1;

      this.textBox = C.h('div.lc-text', { tabindex: '0' });
      this._labelButtons = this.labelInfo.map(function (info, i) {
        return C.h('button.lc-label', { type: 'button', role: 'option', onclick: function () { self.pickLabel(i); } }, [
          C.h('span.lc-swatch', { style: 'background:' + C.color(i) }),
          i < 10 ? C.h('kbd', { text: String((i + 1) % 10) }) : null,
          C.h('span', { text: info.full }),
        ]);
      });
      this._status = C.h('p.lc-status', { 'aria-live': 'polite' });
      this._removeButton = C.h('button.lc-tool', { type: 'button', text: 'Remove highlight', disabled: true, onclick: function () { self.removeSelected(); } });
      C.layout(
        this,
        this.getAttribute('header'),
        [this.textBox, C.h('p.lc-help', { text: 'Select words with the mouse, then choose a label (or choose the label first). ' +
          'Click a highlight to select it: a label relabels it, Delete removes it.' })],
        [C.h('h3.lc-side-title', { text: 'Labels' }), C.h('div.lc-labels', { role: 'listbox' }, this._labelButtons), this._removeButton, this._status, C.instructions(regions, extra)]
      );
      this.textBox.addEventListener('mouseup', function () {
        self._fromSelection();
      });
      this.textBox.addEventListener('click', function (e) {
        var mark = e.target.closest('mark');
        if (mark && window.getSelection().isCollapsed) self._select(Number(mark.dataset.index));
      });
      this.addEventListener('pointerdown', function () {
        C.keyTarget = self;
      });
      if (!C.keyTarget) C.keyTarget = this;
      this.pickLabel(0);
      this._render();
    }

    get value() {
      return {
        entities: (this.entities || [])
          .slice()
          .sort(function (a, b) {
            return a.startOffset - b.startOffset;
          })
          .map(function (e) {
            return { label: e.label, startOffset: e.startOffset, endOffset: e.endOffset };
          }),
      };
    }

    _crowdAnswer() {
      return this.value;
    }

    pickLabel(i) {
      if (i < 0 || i >= this.labelInfo.length) return;
      this.activeLabel = i;
      this._labelButtons.forEach(function (b, j) {
        b.setAttribute('aria-selected', String(i === j));
      });
      if (this._fromSelection()) return;
      if (this.selected >= 0) {
        this.entities[this.selected].label = this.labelInfo[i].label;
        this._render();
      }
    }

    removeSelected() {
      if (this.selected < 0) return;
      this.entities.splice(this.selected, 1);
      this.selected = -1;
      this._render();
    }

    _select(i) {
      this.selected = i;
      this._render();
    }

    /** Label the selected text, if any; true if it did. */
    _fromSelection() {
      var sel = window.getSelection();
      if (!sel.rangeCount || sel.isCollapsed || !this.labelInfo.length) return false;
      var range = sel.getRangeAt(0);
      if (!this.textBox.contains(range.startContainer) || !this.textBox.contains(range.endContainer)) return false;
      var start = this._offset(range.startContainer, range.startOffset);
      var end = this._offset(range.endContainer, range.endOffset);
      // Leave surrounding spaces out of the highlight.
      while (start < end && /\s/.test(this.chars[start])) start++;
      while (end > start && /\s/.test(this.chars[end - 1])) end--;
      sel.removeAllRanges();
      if (end <= start) return false;
      this.entities = this.entities.filter(function (e) {
        return e.endOffset <= start || e.startOffset >= end; // a new highlight replaces those it overlaps
      });
      this.entities.push({ label: this.labelInfo[this.activeLabel].label, startOffset: start, endOffset: end });
      this.selected = this.entities.length - 1;
      this._render();
      return true;
    }

    /** The code point offset of a DOM position in the text box (highlights add no text). */
    _offset(node, offset) {
      var range = document.createRange();
      range.setStart(this.textBox, 0);
      range.setEnd(node, offset);
      return Array.from(range.toString()).length;
    }

    _render() {
      var self = this;
      var box = this.textBox;
      box.textContent = '';
      var order = this.entities
        .map(function (e, i) {
          return i;
        })
        .sort(function (a, b) {
          return self.entities[a].startOffset - self.entities[b].startOffset;
        });
      var at = 0;
      order.forEach(function (i) {
        var e = self.entities[i];
        if (e.startOffset < at) return;
        box.append(self.chars.slice(at, e.startOffset).join(''));
        var index = self.labelInfo.findIndex(function (info) {
          return info.label === e.label;
        });
        var info = self.labelInfo[index] || { short: e.label };
        box.append(C.h('mark.lc-entity' + (i === self.selected ? '.lc-selected' : ''), {
          'data-index': i,
          'data-short': info.short,
          style: '--c:' + C.color(index),
          text: self.chars.slice(e.startOffset, e.endOffset).join(''),
        }));
        at = e.endOffset;
      });
      box.append(this.chars.slice(at).join(''));
      this._removeButton.disabled = this.selected < 0;
      var n = this.entities.length;
      this._status.textContent = n + (n === 1 ? ' highlight' : ' highlights');
    }

    onKey(e) {
      var index = '1234567890'.indexOf(e.key);
      if (index >= 0 && index < this.labelInfo.length) {
        this.pickLabel(index);
        return true;
      }
      if (this.selected >= 0 && (e.key === 'Delete' || e.key === 'Backspace')) {
        this.removeSelected();
        return true;
      }
      if (e.key === 'Escape') {
        this._select(-1);
        return true;
      }
      return false;
    }
  }

  customElements.define('crowd-entity-annotation', EntityAnnotation);
})();
