// loopin's crowd-* elements, core: lenient attribute parsing, DOM helpers, the base element,
// instructions and dialogs, keyboard routing, the ready event and the bridge to the console.
// The files in this folder are served joined, in name order, as /static/crowd-html-elements.js.
(function () {
  'use strict';

  var C = (window.LoopinCrowd = {});

  // -- lenient "JSON" in attributes -----------------------------------------------------------
  // Templates write labels="['Cat', 'Dog']" and JS object literals with unquoted keys and
  // trailing commas, so attributes are read as JSON5-ish: single or double quotes, bare keys,
  // trailing commas, comments, +/- and hex numbers, NaN/Infinity.
  var ESCAPES = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', 0: '\0' };
  var NUMBER = /[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity|NaN)/y;
  var IDENT = /[A-Za-z_$\u00c0-\uffff][\w$\u00c0-\uffff]*/y;

  C.parseLenient = function (text) {
    var s = String(text);
    var i = 0;

    function fail(what) {
      throw new SyntaxError(what + ' at position ' + i);
    }
    function skip() {
      for (;;) {
        var c = s[i];
        if (c === ' ' || c === '\n' || c === '\r' || c === '\t' || c === '\u00a0' || c === '\ufeff') {
          i++;
        } else if (c === '/' && s[i + 1] === '/') {
          while (i < s.length && s[i] !== '\n') i++;
        } else if (c === '/' && s[i + 1] === '*') {
          var end = s.indexOf('*/', i + 2);
          if (end < 0) fail('unclosed comment');
          i = end + 2;
        } else {
          return;
        }
      }
    }
    function match(re) {
      re.lastIndex = i;
      var m = re.exec(s);
      if (!m) return null;
      i = re.lastIndex;
      return m[0];
    }
    function string() {
      var quote = s[i++];
      var out = '';
      while (i < s.length) {
        var c = s[i++];
        if (c === quote) return out;
        if (c !== '\\') {
          out += c;
          continue;
        }
        var e = s[i++];
        if (e === 'u') {
          out += String.fromCharCode(parseInt(s.substr(i, 4), 16));
          i += 4;
        } else if (e === 'x') {
          out += String.fromCharCode(parseInt(s.substr(i, 2), 16));
          i += 2;
        } else if (e === '\n') {
          // a line continuation
        } else {
          out += ESCAPES[e] !== undefined ? ESCAPES[e] : e;
        }
      }
      return fail('unclosed string');
    }
    function put(obj, key, val) {
      // defineProperty: a key named __proto__ stays a plain key.
      Object.defineProperty(obj, key, { value: val, enumerable: true, writable: true, configurable: true });
    }
    function object() {
      i++;
      var obj = {};
      skip();
      while (s[i] !== '}') {
        var key = s[i] === '"' || s[i] === "'" ? string() : match(IDENT) || match(NUMBER);
        if (key === null) fail('expected a key');
        skip();
        if (s[i] !== ':') fail("expected ':'");
        i++;
        put(obj, key, value());
        skip();
        if (s[i] === ',') {
          i++;
          skip();
        } else if (s[i] !== '}') {
          fail("expected ',' or '}'");
        }
      }
      i++;
      return obj;
    }
    function array() {
      i++;
      var arr = [];
      skip();
      while (s[i] !== ']') {
        arr.push(value());
        skip();
        if (s[i] === ',') {
          i++;
          skip();
        } else if (s[i] !== ']') {
          fail("expected ',' or ']'");
        }
      }
      i++;
      return arr;
    }
    function value() {
      skip();
      var c = s[i];
      if (c === '{') return object();
      if (c === '[') return array();
      if (c === '"' || c === "'") return string();
      var num = match(NUMBER);
      if (num !== null) return Number(num.replace(/^\+/, ''));
      var word = match(IDENT);
      if (word === 'true') return true;
      if (word === 'false') return false;
      if (word === 'null' || word === 'undefined') return null;
      return fail('unexpected ' + (word || (c === undefined ? 'end of text' : "'" + c + "'")));
    }

    var result = value();
    skip();
    if (i < s.length) fail('unexpected text after the value');
    return result;
  };

  /** An attribute read as lenient JSON; `fallback` if it is missing or unreadable. */
  C.jsonAttr = function (el, name, fallback) {
    var text = el.getAttribute(name);
    if (text === null || text.trim() === '') return fallback;
    try {
      return JSON.parse(text);
    } catch (notStrict) {
      try {
        return C.parseLenient(text);
      } catch (err) {
        console.warn('<' + el.localName + '> attribute ' + name + ' is not readable: ' + err.message);
        return fallback;
      }
    }
  };

  C.boolAttr = function (el, name) {
    var v = el.getAttribute(name);
    return v !== null && v !== 'false';
  };

  C.numAttr = function (el, name, fallback) {
    var v = parseFloat(el.getAttribute(name));
    return isFinite(v) ? v : fallback;
  };

  /** Label entries as strings: ['a', 'b'] or [{label: 'a'}, ...]. */
  C.labelList = function (value) {
    if (!Array.isArray(value)) return [];
    return value
      .map(function (item) {
        if (item && typeof item === 'object') return String(item.label !== undefined ? item.label : item.name || '');
        return item === null || item === undefined ? '' : String(item);
      })
      .filter(function (label) {
        return label !== '';
      });
  };

  // -- DOM ----------------------------------------------------------------------------------------

  /** h('button.lc-x', {type: 'button', onclick: fn}, ['text', node]) */
  C.h = function (spec, props, children) {
    var parts = spec.split('.');
    var el = document.createElement(parts[0]);
    if (parts.length > 1) el.className = parts.slice(1).join(' ');
    Object.keys(props || {}).forEach(function (key) {
      var v = props[key];
      if (v === undefined || v === null || v === false) return;
      if (key.slice(0, 2) === 'on') el.addEventListener(key.slice(2), v);
      else if (key === 'text') el.textContent = v;
      else if (key === 'style') el.style.cssText = v;
      else el.setAttribute(key, v === true ? '' : v);
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) el.append(child);
    });
    return el;
  };

  /** The direct children of `el` with one of these tag names, taken out of the element. */
  C.takeRegions = function (el, names) {
    var found = {};
    Array.prototype.slice.call(el.children).forEach(function (child) {
      var name = child.localName;
      if (names.indexOf(name) >= 0 && !found[name]) {
        found[name] = child;
        child.remove();
      }
    });
    return found;
  };

  C.dialog = function (title, content) {
    var close = C.h('button.lc-dialog-close', { type: 'button', 'aria-label': 'Close', text: '×' });
    var dialog = C.h('dialog.lc-dialog', {}, [
      C.h('div.lc-dialog-head', {}, [C.h('h2', { text: title }), close]),
      C.h('div.lc-dialog-body', {}, content),
    ]);
    close.addEventListener('click', function () {
      dialog.close();
    });
    dialog.addEventListener('click', function (e) {
      if (e.target === dialog) dialog.close(); // a click on the backdrop
    });
    dialog._owner = C.building;
    document.body.appendChild(dialog);
    return dialog;
  };

  /** The side panel of a widget: short instructions, a link to the full instructions, and
   * whatever else the template put inside the widget. */
  C.instructions = function (regions, extra) {
    var parts = [];
    var full = regions['full-instructions'];
    var short = regions['short-instructions'];
    if (short) {
      short.classList.add('lc-short');
      parts.push(short);
    }
    if (full) {
      var dialog = C.dialog(full.getAttribute('header') || 'Instructions', [full]);
      full.classList.add('lc-full');
      parts.push(
        C.h('button.lc-linkbutton', {
          type: 'button',
          text: 'View full instructions',
          onclick: function () {
            dialog.showModal();
          },
        })
      );
    }
    (extra || []).forEach(function (node) {
      parts.push(node);
    });
    return parts.length ? C.h('div.lc-instructions', {}, parts) : null;
  };

  // Tableau's ten colours, then the same hues darker and lighter.
  var PALETTE = ['#2ca02c', '#1f77b4', '#ff7f0e', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf',
    '#bcbd22', '#7f7f7f', '#98df8a', '#aec7e8', '#ffbb78', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2',
    '#9edae5', '#dbdb8d', '#c7c7c7'];
  C.color = function (index) {
    if (index < 0) return '#5f6b7a';
    if (index < PALETTE.length) return PALETTE[index];
    var hue = (index * 137.508) % 360; // golden-angle steps never repeat a hue
    return hslHex(hue, 0.65, 0.45);
  };
  function hslHex(h, s, l) {
    var f = function (n) {
      var k = (n + h / 30) % 12;
      var c = l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
      return ('0' + Math.round(c * 255).toString(16)).slice(-2);
    };
    return '#' + f(0) + f(8) + f(4);
  }

  C.isEditable = function (target) {
    if (!target || !target.closest) return false;
    return !!target.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]');
  };

  // -- the base element ---------------------------------------------------------------------------
  // An element is built once its children are parsed (at DOMContentLoaded for elements in the
  // page, at once for elements added later) and builds only once, however often it moves.
  var pending = [];
  var parsed = document.readyState !== 'loading';
  C.afterBuild = []; // functions called with each element once it is built
  C.building = null;

  C.Element = class extends HTMLElement {
    connectedCallback() {
      if (this._built || this._queued) return;
      if (parsed) {
        this._build();
      } else {
        this._queued = true;
        pending.push(this);
      }
    }

    _build() {
      if (this._built) return;
      this._built = true;
      var outer = C.building;
      C.building = this; // dialogs made now belong to this element
      try {
        this.build();
      } finally {
        C.building = outer;
      }
      this.classList.add('lc-built');
      var self = this;
      C.afterBuild.forEach(function (hook) {
        hook(self);
      });
    }

    build() {}
  };

  // -- keyboard --------------------------------------------------------------------------------------
  // Number keys, arrows, Delete and Ctrl/Cmd shortcuts (undo, redo) act on the widget the
  // worker last used, unless they are typing in a field.
  C.keyTarget = null;
  document.addEventListener('keydown', function (e) {
    if (!C.keyTarget || !C.keyTarget.isConnected || e.defaultPrevented || C.isEditable(e.target)) return;
    if (e.altKey || document.querySelector('dialog[open]')) return;
    if (e.ctrlKey || e.metaKey) {
      if (C.keyTarget.onCommandKey && C.keyTarget.onCommandKey(e)) e.preventDefault();
    } else if (C.keyTarget.onKey(e)) {
      e.preventDefault();
    }
  });

  // -- ready, and the console bridge -----------------------------------------------------------------
  var ready = false;
  var draftRestored = false;

  function post(message) {
    if (window.parent !== window) window.parent.postMessage(message, '*');
  }

  /** The shape editors' states, to the console, which keeps them as the task's draft. */
  C.saveDraft = function () {
    var draft = {};
    draftEditors().forEach(function (el) {
      draft[el.draftKey] = el.draftState();
    });
    post({ type: 'loopin:draft', draft: draft });
  };

  function draftEditors() {
    return Array.prototype.filter.call(document.querySelectorAll('.lc-built'), function (el) {
      return typeof el.draftState === 'function';
    });
  }

  C.sendAnswer = function (answer) {
    post({ type: 'loopin:answer', answer: answer });
    document.dispatchEvent(new CustomEvent('loopin-answer', { detail: answer }));
  };

  document.addEventListener('DOMContentLoaded', function () {
    parsed = true;
    pending.splice(0).forEach(function (el) {
      el._queued = false;
      if (el.isConnected) el._build();
    });
    ready = true;
    document.dispatchEvent(new CustomEvent('all-crowd-elements-ready', { bubbles: true }));
    post({ type: 'loopin:ready' });
  });

  window.addEventListener('message', function (e) {
    if (e.source !== window.parent || !e.data) return;
    if (e.data.type === 'loopin:hello') {
      // The host page has its own Submit button: the one crowd-form adds would be a second.
      C.hostSubmits = true;
      document.querySelectorAll('crowd-button.lc-auto-submit').forEach(function (b) { b.hidden = true; });
      if (ready) post({ type: 'loopin:ready' });
    }
    if (e.data.type === 'loopin:submit') C.submitPage();
    if (e.data.type === 'loopin:draft' && !draftRestored && e.data.draft) {
      // The draft the console kept for this task (after a reload or a crash), restored once.
      draftRestored = true;
      draftEditors().forEach(function (el) {
        if (typeof e.data.draft[el.draftKey] === 'string') el.restoreDraft(e.data.draft[el.draftKey]);
      });
    }
  });

  /** The console's Submit button: the page's crowd-form submits (or, without one, the
   * answers of the whole page). */
  C.submitPage = function () {
    var form = document.querySelector('crowd-form');
    if (form && form.requestSubmit) {
      form.requestSubmit();
    } else if (C.validate(document.body)) {
      C.confirmSubmit(document.body, function () {
        var answer = C.answerOrProblem(document.body, document.body.firstElementChild || document.body);
        if (answer !== null) C.sendAnswer(answer);
      });
    }
  };
})();
