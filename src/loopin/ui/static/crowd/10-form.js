// crowd-form and crowd-button: validating the page, assembling answerContent, submitting.
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var SKIPPED_TYPES = ['submit', 'button', 'reset', 'image', 'file'];

  /** answerContent: each named crowd element adds its own shape; plain named inputs add their
   * value as a string (the last one wins when several share a name); crowd elements that
   * answer `undefined` (an empty crowd-input) are left out. */
  C.collect = function (root) {
    var answer = {};
    root.querySelectorAll('*').forEach(function (el) {
      // A2I's built-in task types' elements have no name: they answer under their type.
      var name = el.getAttribute('name') || el._answerKey;
      if (!name) return;
      if (typeof el._crowdAnswer === 'function') {
        var value;
        try {
          value = el._crowdAnswer();
        } catch (err) {
          throw new C.LostAnswer(el, 'could not give its answer (' + (err && err.message ? err.message : err) + ')');
        }
        if (value === undefined) return;
        var prev = answer[name];
        // Checkboxes and radio buttons sharing a name merge into one object.
        if (el._mergesByName && prev && typeof prev === 'object' && !Array.isArray(prev)) {
          answer[name] = Object.assign({}, prev, value);
        } else {
          answer[name] = value;
        }
      } else if (isPlainControl(el)) {
        if ((el.type === 'checkbox' || el.type === 'radio') && !el.checked) return;
        answer[name] = el.type === 'checkbox' || el.type === 'radio' ? el.value || 'on' : String(el.value);
      }
    });
    return answer;
  };

  /** Raised instead of sending an answer that would miss a named element's value. */
  C.LostAnswer = class extends Error {
    constructor(el, why) {
      super('<' + el.localName + ' name="' + el.getAttribute('name') + '"> ' + why + ', so its answer would be lost. ' +
        'Your answer was not sent: tell your admin, then release or decline this task.');
      this.element = el;
    }
  };

  /** The first named crowd-* element under `root` that loopin does not know (a template
   * written for an element library loopin has not implemented), as a LostAnswer; or null. */
  C.unknownElement = function (root) {
    var named = root.querySelectorAll('[name]');
    for (var i = 0; i < named.length; i++) {
      var el = named[i];
      if (el.localName.indexOf('crowd-') === 0 && !customElements.get(el.localName)) {
        return new C.LostAnswer(el, 'is an element loopin does not know');
      }
    }
    return null;
  };

  /** The answer of `root`, or null after telling the worker why it cannot be sent. */
  C.answerOrProblem = function (root, where) {
    var lost = C.unknownElement(root);
    if (!lost) {
      try {
        return C.collect(root);
      } catch (err) {
        if (!(err instanceof C.LostAnswer)) throw err;
        lost = err;
      }
    }
    console.warn(lost.message);
    C.showProblem(where, lost.message);
    return null;
  };

  function isPlainControl(el) {
    var tag = el.localName;
    if (tag !== 'input' && tag !== 'select' && tag !== 'textarea') return false;
    return !el.disabled && SKIPPED_TYPES.indexOf(el.type) < 0;
  }

  /** True if every control and crowd element under `root` is valid; otherwise the first
   * invalid one says why and gets the focus. */
  C.validate = function (root) {
    var all = root.querySelectorAll('*');
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      if (typeof el._crowdValidate === 'function') {
        var problem = el._crowdValidate();
        if (problem) {
          C.showProblem(el, problem);
          return false;
        }
      } else if ((el.localName === 'input' || el.localName === 'select' || el.localName === 'textarea') &&
          !el.disabled && !el.checkValidity()) {
        el.reportValidity();
        return false;
      }
    }
    return true;
  };

  /** Run `proceed` once the worker agreed to what the elements under `root` ask before a
   * submit (an annotator with no shapes asks "No boxes: submit anyway?"); at once if none asks. */
  C.confirmSubmit = function (root, proceed) {
    var questions = [];
    root.querySelectorAll('*').forEach(function (el) {
      var question = typeof el._crowdConfirm === 'function' && el._crowdConfirm();
      if (question) questions.push(question);
    });
    if (!questions.length) return proceed();
    if (document.querySelector('dialog.lc-confirm')) return; // already asking
    var dialog = C.h('dialog.lc-dialog.lc-confirm', {}, [
      C.h('div.lc-dialog-body', {}, questions.map(function (q) {
        return C.h('p', { text: q });
      })),
      C.h('div.lc-dialog-actions', {}, [
        C.h('button.lc-button', { type: 'button', text: 'Keep editing', onclick: function () { dialog.close(); } }),
        C.h('button.lc-button.lc-primary', { type: 'button', text: 'Submit anyway', onclick: function () {
          dialog.close();
          proceed();
        } }),
      ]),
    ]);
    dialog.addEventListener('close', function () {
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  };

  C.showProblem = function (el, message) {
    var box = el._problemBox;
    if (!box) {
      box = el._problemBox = C.h('div.lc-problem', { role: 'alert' });
      el.prepend(box);
    }
    box.textContent = message;
    box.hidden = false;
    el.scrollIntoView({ block: 'nearest' });
  };

  C.clearProblem = function (el) {
    if (el._problemBox) el._problemBox.hidden = true;
  };

  class CrowdForm extends C.Element {
    build() {
      var self = this;
      if (!this.querySelector('crowd-button[form-action="submit"], button[type="submit"], input[type="submit"]')) {
        var auto = C.h('crowd-button.lc-auto-submit', { 'form-action': 'submit', variant: 'primary' }, ['Submit']);
        auto.hidden = Boolean(C.hostSubmits);
        this.appendChild(auto);
      }
      // Plain submit buttons in the template submit this form (as they would a <form>).
      this.addEventListener('click', function (e) {
        var control = e.target.closest && e.target.closest('button, input[type="submit"]');
        if (!control || control.closest('crowd-button') || !self.contains(control) || control.form) return;
        if (control.type === 'submit') {
          e.preventDefault();
          self.requestSubmit();
        }
      });
    }

    /** Validate, ask what the elements ask before a submit, fire a cancelable `submit` event
     * (templates check answers in onsubmit), then send the answer to the console. */
    requestSubmit() {
      var self = this;
      if (this._sent || !C.validate(this)) return;
      C.confirmSubmit(this, function () {
        C.clearProblem(self);
        // A template's own submit handler that throws would otherwise let the answer go out
        // without whatever the handler was about to add: stop, and say so.
        var failed = null;
        var onError = function (e) {
          failed = e.error && e.error.message ? e.error.message : e.message || 'an error';
        };
        window.addEventListener('error', onError);
        var go;
        try {
          go = self.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
        } finally {
          window.removeEventListener('error', onError);
        }
        if (failed !== null) {
          C.showProblem(self, "This task's own check of your answer failed (" + failed + '). Your answer was not sent: ' +
            'tell your admin, then release or decline this task.');
          return;
        }
        if (go) self.submit();
      });
    }

    /** Send the answer at once, without validation or a `submit` event (like form.submit()). */
    submit() {
      if (this._sent) return;
      var answer = C.answerOrProblem(this, this);
      if (answer === null) return;
      this._sent = true;
      this.querySelectorAll('crowd-button[form-action="submit"]').forEach(function (button) {
        button.setAttribute('disabled', '');
      });
      C.sendAnswer(answer);
    }

    /** AWS's crowd-form wraps a <form>, which templates reach as `.form` to add fields to. */
    get form() {
      return this;
    }
  }

  class CrowdButton extends C.Element {
    static get observedAttributes() {
      return ['disabled'];
    }

    build() {
      var self = this;
      var variant = this.getAttribute('variant') || 'normal';
      var button = (this._button = C.h('button.lc-button.lc-' + variant, { type: 'button' }));
      while (this.firstChild) button.appendChild(this.firstChild);
      button.disabled = C.boolAttr(this, 'disabled');
      this.appendChild(button);
      button.addEventListener('click', function () {
        var href = self.getAttribute('href');
        if (href) window.open(href, self.getAttribute('target') || '_blank', 'noopener');
        if (self.getAttribute('form-action') === 'submit') {
          var form = self.closest('crowd-form');
          if (form) form.requestSubmit();
          else C.submitPage();
        }
      });
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

  customElements.define('crowd-form', CrowdForm);
  customElements.define('crowd-button', CrowdButton);
})();
