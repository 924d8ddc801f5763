// What the shape editors (crowd-bounding-box, crowd-keypoint, crowd-polygon) share: one
// selected shape, relabelled only through its own control (picking a label in the list sets
// the label of the next shape), delete, undo and redo of every finished edit, "changed from
// the model's shapes" with a reset, the draft the console keeps, and the question asked
// before an empty answer is sent.
//
// A subclass keeps its shapes in `this.shapes` (plain {label, ...} objects), sets
// `this.initialGiven` when the template gave an initial-value, calls `this.commit()` after
// each finished edit, and names its shapes with `nouns` (['box', 'boxes']).
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var HISTORY = 100; // edits kept for undo
  var HISTORY_CHARS = 16e6; // and fewer where the shapes are many (each edit keeps them all)

  /** One state as text: a draft, a history entry. */
  function stateOf(shapes) {
    return JSON.stringify(shapes);
  }

  /** The same shapes in any order give the same text: "changed" means a different set. */
  function canonical(shapes) {
    return shapes.map(function (s) { return JSON.stringify(s); }).sort().join('\n');
  }

  C.ShapeAnnotator = class extends C.ImageAnnotator {
    build() {
      this.selected = -1;
      this._history = [stateOf(this.shapes)];
      this._at = 0;
      this._initialText = this._history[0];
      this._initialCanonical = canonical(this.shapes);
      this.draftKey = this.getAttribute('name') || this.localName;
      super.build();
      this._showSelection();
      this._showHistory();
    }

    /** True if the shapes differ from the template's initial-value. */
    get modified() {
      return canonical(this.shapes) !== this._initialCanonical;
    }

    tools() {
      var self = this;
      var noun = this.nouns[0];
      this._deleteButton = this._tool('Delete ' + noun, 'Delete the selected ' + noun + ' (Delete)', function () {
        self.deleteSelected();
      });
      this._undoButton = this._tool('Undo', 'Undo (Ctrl+Z)', function () {
        self.undo();
      });
      this._redoButton = this._tool('Redo', 'Redo (Shift+Ctrl+Z or Ctrl+Y)', function () {
        self.redo();
      });
      return [this._deleteButton, this._undoButton, this._redoButton];
    }

    panel() {
      var self = this;
      this._relabelSelect = C.h('select.lc-input');
      this._relabelSelect.addEventListener('change', function () {
        self.relabelSelected(self._relabelSelect.value);
        self.stage.focus({ preventScroll: true }); // keyboard shortcuts work again
      });
      this._relabel = C.h('label.lc-field.lc-relabel', {}, [
        C.h('span.lc-field-label', { text: 'Label of the selected ' + this.nouns[0] }),
        this._relabelSelect,
      ]);
      var model = "the model's " + this.nouns[1];
      this._changed = C.h('p.lc-changed', {}, [
        C.h('span', { text: 'Changed from ' + model + '.' }),
        C.h('button.lc-linkbutton', { type: 'button', text: 'Reset to ' + model, onclick: function () {
          self.reset();
        } }),
      ]);
      return [this._relabel, this._changed];
    }

    statusText() {
      var n = this.shapes.length;
      var text = n + ' ' + this.nouns[n === 1 ? 0 : 1];
      if (this.selected >= 0) text += ' · selected: ' + (this.shapes[this.selected].label || '(no label)');
      return text;
    }

    select(index) {
      this.selected = index;
      this._showSelection();
      this.invalidate(C.LAYER | C.OVERLAY);
    }

    deleteSelected() {
      if (this.selected < 0) return;
      this.shapes.splice(this.selected, 1);
      this.select(-1);
      this.commit();
    }

    relabelSelected(label) {
      if (this.selected < 0) return;
      this.shapes[this.selected].label = label;
      this.commit();
    }

    // -- history --

    /** Record the shapes as they are now as one edit (nothing if nothing changed). */
    commit() {
      var now = stateOf(this.shapes);
      if (now === this._history[this._at]) return;
      var history = this._history;
      history.splice(this._at + 1, Infinity, now);
      var chars = history.reduce(function (sum, state) { return sum + state.length; }, 0);
      while (history.length > 2 && (history.length > HISTORY || chars > HISTORY_CHARS)) chars -= history.shift().length;
      this._at = history.length - 1;
      this._changedNow();
    }

    undo() {
      if (this._at === 0) return;
      this._at--;
      this._apply(this._history[this._at]);
    }

    redo() {
      if (this._at === this._history.length - 1) return;
      this._at++;
      this._apply(this._history[this._at]);
    }

    /** Back to the model's shapes, as an edit of its own (undo brings the work back). */
    reset() {
      this._apply(this._initialText, true);
    }

    _apply(state, asEdit) {
      var shapes = this.shapes;
      shapes.length = 0; // in place: subclasses name the same array (boxes, points, polygons)
      JSON.parse(state).forEach(function (shape) { shapes.push(shape); });
      this.select(-1);
      if (asEdit) this.commit();
      else this._changedNow();
    }

    _changedNow() {
      this._showHistory();
      this.invalidate(C.LAYER | C.OVERLAY);
      C.saveDraft();
    }

    _showHistory() {
      this._undoButton.disabled = this._at === 0;
      this._redoButton.disabled = this._at === this._history.length - 1;
      this._changed.hidden = !this.initialGiven || !this.modified;
    }

    /** The Delete button, and the selected shape's label control. */
    _showSelection() {
      this._deleteButton.disabled = this.selected < 0;
      this._relabel.hidden = this.selected < 0;
      if (this.selected < 0) return;
      var current = this.shapes[this.selected].label;
      var options = this._labels.indexOf(current) < 0 ? [current].concat(this._labels) : this._labels;
      this._relabelSelect.textContent = '';
      options.forEach(function (label) {
        this._relabelSelect.appendChild(C.h('option', { value: label, text: label || '(no label)' }));
      }, this);
      this._relabelSelect.value = current;
    }

    // -- drafts (kept by the console) --

    draftState() {
      return this._history[this._at];
    }

    restoreDraft(state) {
      var shapes;
      try {
        shapes = JSON.parse(state);
      } catch (err) {
        return;
      }
      if (Array.isArray(shapes)) this._apply(state, true);
    }

    // -- keys --

    onCommandKey(e) {
      var key = e.key.toLowerCase();
      if (key === 'z' && !e.shiftKey) this.undo();
      else if ((key === 'z' && e.shiftKey) || key === 'y') this.redo();
      else return false;
      return true;
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

    // -- submitting --

    _crowdConfirm() {
      return this.naturalWidth && !this.shapes.length ? 'No ' + this.nouns[1] + ': submit anyway?' : '';
    }
  };
})();
