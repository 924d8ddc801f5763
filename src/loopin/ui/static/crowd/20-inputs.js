// Form fields and page furniture: crowd-input, crowd-text-area, crowd-checkbox,
// crowd-radio-group / crowd-radio-button, crowd-slider, crowd-alert, crowd-instructions,
// crowd-full-instructions, crowd-short-instructions.
// The controls inside these elements never get a `name`, so only the element answers.
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  /** Base for elements wrapping one native control whose value they report. */
  class Field extends C.Element {
    get value() {
      return this._control ? this._control.value : this._early !== undefined ? this._early : this.getAttribute('value') || '';
    }

    set value(v) {
      v = v === null || v === undefined ? '' : String(v);
      if (this._control) {
        this._control.value = v;
        this._afterInput();
      } else {
        this._early = v;
      }
    }

    focus() {
      if (this._control) this._control.focus();
    }

    _afterInput() {}

    _label(control) {
      var text = this.getAttribute('label');
      var children = [];
      if (text) children.push(C.h('span.lc-field-label', { text: text }));
      children.push(control);
      return C.h('label.lc-field', {}, children);
    }

    _common(control) {
      this._control = control;
      control.value = this._early !== undefined ? this._early : this.getAttribute('value') || '';
      if (this.hasAttribute('placeholder')) control.placeholder = this.getAttribute('placeholder');
      control.required = C.boolAttr(this, 'required');
      control.disabled = C.boolAttr(this, 'disabled');
      var max = C.numAttr(this, 'max-length', 0);
      var min = C.numAttr(this, 'min-length', 0);
      if (max > 0) control.maxLength = max;
      if (min > 0) control.minLength = min;
      var message = this.getAttribute('error-message');
      if (message) {
        control.addEventListener('invalid', function () {
          control.setCustomValidity('');
          if (!control.validity.valid) control.setCustomValidity(message);
        });
        control.addEventListener('input', function () {
          control.setCustomValidity('');
        });
      }
      var self = this;
      control.addEventListener('input', function () {
        self._afterInput();
      });
      if (C.boolAttr(this, 'auto-focus')) {
        requestAnimationFrame(function () {
          control.focus();
        });
      }
    }
  }

  class CrowdInput extends Field {
    build() {
      var input = C.h('input.lc-input', { type: this.getAttribute('type') || 'text' });
      this._common(input);
      var allowed = this.getAttribute('allowed-pattern');
      if (allowed) {
        // Characters that do not match the pattern are not typed at all.
        var re = new RegExp('^(?:' + allowed + ')$');
        input.addEventListener('beforeinput', function (e) {
          if (e.data && Array.from(e.data).some(function (ch) { return !re.test(ch); })) e.preventDefault();
        });
      }
      this.appendChild(this._label(input));
    }

    _crowdAnswer() {
      var v = this.value;
      return v === '' ? undefined : v;
    }
  }

  class CrowdTextArea extends Field {
    build() {
      var area = C.h('textarea.lc-input', { rows: this.getAttribute('rows') || 2 });
      this._common(area);
      this._maxRows = C.numAttr(this, 'max-rows', 0);
      var children = [this._label(area)];
      if (C.boolAttr(this, 'char-counter')) {
        this._counter = C.h('div.lc-counter');
        children.push(this._counter);
      }
      children.forEach(this.appendChild, this);
      this._afterInput();
    }

    _afterInput() {
      var area = this._control;
      if (this._maxRows > 0) {
        // Grow with the text up to max-rows, then scroll.
        area.style.height = 'auto';
        var line = parseFloat(getComputedStyle(area).lineHeight) || 20;
        area.style.height = Math.min(area.scrollHeight, line * this._maxRows + 12) + 'px';
      }
      if (this._counter) {
        this._counter.textContent = area.value.length + (area.maxLength > 0 ? ' / ' + area.maxLength : '');
      }
    }

    _crowdAnswer() {
      return this.value;
    }
  }

  /** crowd-checkbox and crowd-radio-button: answer {value: checked}, merged by name. */
  class Choice extends C.Element {
    static get observedAttributes() {
      return ['disabled'];
    }

    attributeChangedCallback() {
      if (this._control) this._control.disabled = C.boolAttr(this, 'disabled');
    }

    /** Like a native checkbox's: reflects the `disabled` attribute. */
    get disabled() {
      return C.boolAttr(this, 'disabled');
    }

    set disabled(value) {
      if (value) this.setAttribute('disabled', '');
      else this.removeAttribute('disabled');
    }

    get checked() {
      return this._control ? this._control.checked : C.boolAttr(this, 'checked');
    }

    set checked(v) {
      if (this._control) this._control.checked = !!v;
      else if (v) this.setAttribute('checked', '');
      else this.removeAttribute('checked');
    }

    get value() {
      return this.getAttribute('value') || 'on';
    }

    _buildChoice(type) {
      var control = (this._control = C.h('input', { type: type }));
      control.checked = C.boolAttr(this, 'checked');
      control.disabled = C.boolAttr(this, 'disabled');
      control.required = C.boolAttr(this, 'required');
      var label = C.h('label.lc-choice', {}, [control]);
      while (this.firstChild) label.appendChild(this.firstChild);
      this.appendChild(label);
      return control;
    }

    _crowdAnswer() {
      var answer = {};
      answer[this.value] = this.checked;
      return answer;
    }
  }
  Choice.prototype._mergesByName = true;

  class CrowdCheckbox extends Choice {
    build() {
      this._buildChoice('checkbox');
    }
  }

  class CrowdRadioButton extends Choice {
    build() {
      var self = this;
      var control = this._buildChoice('radio');
      // One choice per group; the buttons carry no shared native name, so this keeps them apart.
      control.addEventListener('change', function () {
        var group = self.closest('crowd-radio-group');
        if (!group || !control.checked) return;
        group.querySelectorAll('crowd-radio-button').forEach(function (other) {
          if (other !== self) other.checked = false;
        });
      });
    }
  }

  class CrowdRadioGroup extends C.Element {
    build() {
      this.setAttribute('role', 'radiogroup');
    }
  }

  class CrowdSlider extends C.Element {
    build() {
      var self = this;
      var min = C.numAttr(this, 'min', 0);
      var max = C.numAttr(this, 'max', 100);
      var range = (this._control = C.h('input.lc-range', {
        type: 'range',
        min: min,
        max: max,
        step: C.numAttr(this, 'step', 1),
      }));
      range.value = this._early !== undefined ? this._early : C.numAttr(this, 'value', min);
      range.disabled = C.boolAttr(this, 'disabled');
      var parts = [range];
      if (C.boolAttr(this, 'pin')) parts.push((this._pin = C.h('output.lc-pin')));
      if (C.boolAttr(this, 'editable')) {
        this._number = C.h('input.lc-input.lc-number', { type: 'number', min: min, max: max, step: range.step });
        this._number.addEventListener('input', function () {
          if (self._number.value !== '') range.value = self._number.value;
          self._touched = true;
          self._show();
        });
        parts.push(this._number);
      }
      range.addEventListener('input', function () {
        self._touched = true;
        C.clearProblem(self);
        self._show();
      });
      this.prepend(C.h('div.lc-slider', {}, parts));
      this._show();
    }

    _show() {
      if (this._pin) this._pin.textContent = this._control.value;
      if (this._number && document.activeElement !== this._number) this._number.value = this._control.value;
    }

    get value() {
      return this._control ? Number(this._control.value) : C.numAttr(this, 'value', C.numAttr(this, 'min', 0));
    }

    set value(v) {
      if (this._control) {
        this._control.value = v;
        this._show();
      } else {
        this._early = v;
      }
    }

    _crowdValidate() {
      if (C.boolAttr(this, 'required') && !this._touched) return 'Move the slider to give your answer.';
      return '';
    }

    _crowdAnswer() {
      return this.value;
    }
  }

  class CrowdAlert extends C.Element {
    build() {
      var self = this;
      this.setAttribute('role', this.getAttribute('type') === 'error' ? 'alert' : 'status');
      this.classList.add('lc-alert', 'lc-alert-' + (this.getAttribute('type') || 'info'));
      if (C.boolAttr(this, 'dismissible')) {
        this.appendChild(
          C.h('button.lc-dialog-close', {
            type: 'button',
            'aria-label': 'Dismiss',
            text: '×',
            onclick: function () {
              self.remove();
            },
          })
        );
      }
    }
  }

  /** crowd-instructions: a short summary on the page, the details and examples in a dialog. */
  class CrowdInstructions extends C.Element {
    build() {
      var regions = C.takeRegions(this, ['short-summary', 'detailed-instructions', 'positive-example', 'negative-example']);
      var content = [];
      if (regions['detailed-instructions']) content.push(regions['detailed-instructions']);
      [['positive-example', 'Good example'], ['negative-example', 'Bad example']].forEach(function (pair) {
        if (regions[pair[0]]) content.push(C.h('h3', { text: pair[1] }), regions[pair[0]]);
      });
      var text = this.getAttribute('link-text') || 'Instructions';
      var dialog = C.dialog(text, content);
      var style = this.getAttribute('link-type') === 'button' ? 'button.lc-button.lc-normal' : 'button.lc-linkbutton';
      var open = C.h(style, {
        type: 'button',
        text: text,
        onclick: function () {
          dialog.showModal();
        },
      });
      this.prepend(C.h('div.lc-instructions-box', {}, [regions['short-summary'], open]));
    }
  }

  class CrowdFullInstructions extends C.Element {
    build() {
      var content = Array.prototype.slice.call(this.childNodes);
      var dialog = C.dialog(this.getAttribute('header') || 'Instructions', content);
      this.appendChild(
        C.h('button.lc-linkbutton', {
          type: 'button',
          text: this.getAttribute('link-text') || 'View full instructions',
          onclick: function () {
            dialog.showModal();
          },
        })
      );
    }
  }

  class CrowdShortInstructions extends C.Element {
    build() {
      this.classList.add('lc-short');
    }
  }

  customElements.define('crowd-input', CrowdInput);
  customElements.define('crowd-text-area', CrowdTextArea);
  customElements.define('crowd-checkbox', CrowdCheckbox);
  customElements.define('crowd-radio-group', CrowdRadioGroup);
  customElements.define('crowd-radio-button', CrowdRadioButton);
  customElements.define('crowd-slider', CrowdSlider);
  customElements.define('crowd-alert', CrowdAlert);
  customElements.define('crowd-instructions', CrowdInstructions);
  customElements.define('crowd-full-instructions', CrowdFullInstructions);
  customElements.define('crowd-short-instructions', CrowdShortInstructions);
})();
