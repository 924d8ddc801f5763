// The rest of AWS's page furniture and small controls: crowd-badge, crowd-card, crowd-fab,
// crowd-icon-button, crowd-modal, crowd-tabs / crowd-tab, crowd-toast and
// crowd-toggle-button (the one of these that answers: {"<name>": {"<value or on>": bool}}).
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  // The iron-icons names templates use most, drawn as text (no icon font to load).
  var ICONS = {
    add: '+', 'arrow-back': '←', 'arrow-downward': '↓', 'arrow-forward': '→', 'arrow-upward': '↑', check: '✓',
    'check-circle': '✓', clear: '✕', close: '✕', create: '✎', delete: '🗑', done: '✓', edit: '✎', error: '!',
    favorite: '♥', flag: '⚑', help: '?', 'help-outline': '?', home: '⌂', info: 'i', 'info-outline': 'i', menu: '☰',
    remove: '−', search: '⌕', settings: '⚙', star: '★', 'star-border': '☆', 'thumb-down': '👎', 'thumb-up': '👍',
    visibility: '👁', warning: '⚠', 'zoom-in': '+', 'zoom-out': '−',
  };

  /** An icon attribute: an iron-icons name (as a glyph) or the URL of an image. */
  C.icon = function (name) {
    if (!name) return null;
    if (/^(?:https?:|data:|blob:|\.{0,2}\/)/.test(name)) return C.h('img.lc-icon-image', { src: name, alt: '' });
    return C.h('span.lc-icon', { 'aria-hidden': 'true', text: ICONS[name.replace(/^icons:/, '')] || '•' });
  };

  class CrowdBadge extends C.Element {
    build() {
      this.classList.add('lc-badge');
      this.textContent = '';
      var icon = this.getAttribute('icon');
      this.appendChild(icon ? C.icon(icon) : document.createTextNode(this.getAttribute('label') || ''));
      var target = this.getAttribute('for') && document.getElementById(this.getAttribute('for'));
      if (target && target !== this.parentNode) {
        target.classList.add('lc-badged');
        target.appendChild(this);
      } else if (this.parentNode && this.parentNode.classList) {
        this.parentNode.classList.add('lc-badged');
      }
    }
  }

  class CrowdCard extends C.Element {
    build() {
      this.classList.add('lc-card');
      var heading = this.getAttribute('heading');
      var image = this.getAttribute('image');
      if (heading) this.prepend(C.h('h3.lc-card-heading', { text: heading }));
      if (image) this.prepend(C.h('img.lc-card-image', { src: image, alt: '' }));
    }
  }

  /** crowd-icon-button and crowd-fab: a button showing an icon (a fab also a label). */
  class IconButton extends C.Element {
    static get observedAttributes() {
      return ['disabled'];
    }

    build() {
      var label = this.getAttribute('label');
      var title = this.getAttribute('title') || label || this.getAttribute('icon') || '';
      this._button = C.h('button.' + this.buttonClass, { type: 'button', title: title, 'aria-label': title }, [
        C.icon(this.getAttribute('icon')),
        label && this.showsLabel ? C.h('span', { text: label }) : null,
      ]);
      this._button.disabled = C.boolAttr(this, 'disabled');
      this.appendChild(this._button);
    }

    get buttonClass() {
      return 'lc-icon-button';
    }

    get showsLabel() {
      return false;
    }

    attributeChangedCallback() {
      if (this._button) this._button.disabled = C.boolAttr(this, 'disabled');
    }

    get disabled() {
      return C.boolAttr(this, 'disabled');
    }

    set disabled(value) {
      if (value) this.setAttribute('disabled', '');
      else this.removeAttribute('disabled');
    }
  }

  class CrowdFab extends IconButton {
    get buttonClass() {
      return 'lc-fab';
    }

    get showsLabel() {
      return true;
    }
  }

  /** crowd-modal: a link (or button) that opens its content in a dialog. */
  class CrowdModal extends C.Element {
    build() {
      var self = this;
      var text = this.getAttribute('link-text') || 'Open';
      this._dialog = C.dialog(this.getAttribute('header') || text, Array.prototype.slice.call(this.childNodes));
      var style = this.getAttribute('link-type') === 'button' ? 'button.lc-button.lc-normal' : 'button.lc-linkbutton';
      this.appendChild(C.h(style, { type: 'button', text: text, onclick: function () { self.open(); } }));
    }

    open() {
      if (this._dialog && !this._dialog.open) this._dialog.showModal();
    }

    close() {
      if (this._dialog) this._dialog.close();
    }
  }

  /** crowd-tabs: a tab bar over its crowd-tab children, one shown at a time. Hidden tabs'
   * elements still answer. */
  class CrowdTabs extends C.Element {
    build() {
      var self = this;
      this._tabs = Array.prototype.filter.call(this.children, function (child) {
        return child.localName === 'crowd-tab';
      });
      this._bar = C.h('div.lc-tab-bar', { role: 'tablist' }, this._tabs.map(function (tab, i) {
        return C.h('button.lc-tab-button', {
          type: 'button',
          role: 'tab',
          text: tab.getAttribute('header') || 'Tab ' + (i + 1),
          onclick: function () { self.show(i); },
        });
      }));
      this.prepend(this._bar);
      this.show(0);
    }

    show(index) {
      var buttons = this._bar.children;
      this._tabs.forEach(function (tab, i) {
        tab.hidden = i !== index;
        buttons[i].setAttribute('aria-selected', String(i === index));
      });
    }
  }

  class CrowdTab extends C.Element {
    build() {
      this.setAttribute('role', 'tabpanel');
    }
  }

  /** crowd-toast: a short notice at the bottom of the page, for `duration` ms (3000). */
  class CrowdToast extends C.Element {
    static get observedAttributes() {
      return ['opened'];
    }

    build() {
      this.classList.add('lc-toast');
      this.setAttribute('role', 'status');
      if (this.hasAttribute('text')) this.textContent = this.getAttribute('text');
      this.hidden = !C.boolAttr(this, 'opened');
      if (!this.hidden) this._later();
    }

    attributeChangedCallback() {
      if (!this._built) return;
      this.hidden = !C.boolAttr(this, 'opened');
      if (!this.hidden) this._later();
    }

    get text() {
      return this.getAttribute('text') || this.textContent;
    }

    set text(value) {
      this.setAttribute('text', value);
      this.textContent = value;
    }

    show() {
      this.setAttribute('opened', '');
    }

    open() {
      this.show();
    }

    close() {
      this.removeAttribute('opened');
    }

    _later() {
      var self = this;
      clearTimeout(this._timer);
      var duration = C.numAttr(this, 'duration', 3000);
      if (duration > 0) this._timer = setTimeout(function () { self.close(); }, duration);
    }
  }

  class CrowdToggleButton extends C.Element {
    static get observedAttributes() {
      return ['disabled', 'invalid'];
    }

    build() {
      var self = this;
      var on = this._early !== undefined ? this._early : C.boolAttr(this, 'checked');
      this._control = C.h('button.lc-toggle', { type: 'button', role: 'switch', 'aria-checked': String(on) }, [
        C.h('span.lc-toggle-knob'),
      ]);
      this._control.addEventListener('click', function () {
        if (self.disabled) return;
        self.checked = !self.checked;
        C.clearProblem(self);
        self.dispatchEvent(new Event('change', { bubbles: true }));
      });
      this.attributeChangedCallback();
      this.appendChild(this._control);
    }

    attributeChangedCallback() {
      if (!this._control) return;
      this._control.disabled = C.boolAttr(this, 'disabled');
      this._control.classList.toggle('lc-invalid', C.boolAttr(this, 'invalid'));
    }

    get checked() {
      if (this._control) return this._control.getAttribute('aria-checked') === 'true';
      return this._early !== undefined ? this._early : C.boolAttr(this, 'checked');
    }

    set checked(v) {
      if (this._control) this._control.setAttribute('aria-checked', String(!!v));
      else this._early = !!v;
    }

    get disabled() {
      return C.boolAttr(this, 'disabled');
    }

    set disabled(value) {
      if (value) this.setAttribute('disabled', '');
      else this.removeAttribute('disabled');
    }

    get value() {
      return this.getAttribute('value') || 'on';
    }

    _crowdValidate() {
      return C.boolAttr(this, 'required') && !this.checked ? 'Switch this on to go on.' : '';
    }

    _crowdAnswer() {
      var answer = {};
      answer[this.value] = this.checked;
      return answer;
    }
  }

  customElements.define('crowd-badge', CrowdBadge);
  customElements.define('crowd-card', CrowdCard);
  customElements.define('crowd-icon-button', IconButton);
  customElements.define('crowd-fab', CrowdFab);
  customElements.define('crowd-modal', CrowdModal);
  customElements.define('crowd-tabs', CrowdTabs);
  customElements.define('crowd-tab', CrowdTab);
  customElements.define('crowd-toast', CrowdToast);
  customElements.define('crowd-toggle-button', CrowdToggleButton);
})();
