// Templates written for AWS's elements sometimes reach into an element's shadow root to
// read or restyle its parts (the instructions pane, the full-instructions dialog, the
// drawing canvas, the form an entity annotation makes). loopin's elements draw in the
// light DOM; each task widget gets an open shadow root that shows that light DOM through
// one <slot> (nothing moves, nothing restyles) and whose querySelector finds loopin's
// part for the names AWS's parts have.
(function () {
  'use strict';
  var C = window.LoopinCrowd;
  var fragmentQuery = DocumentFragment.prototype.querySelector;
  var fragmentQueryAll = DocumentFragment.prototype.querySelectorAll;

  function dialogs(host) {
    return Array.prototype.filter.call(document.querySelectorAll('dialog.lc-dialog'), function (d) {
      return d._owner === host;
    });
  }

  // AWS's part (a selector a template may use) -> how to find loopin's.
  var PARTS = [
    [/^\.awsui-app-layout__navigation$|^\.awsui-app-layout__tools$/, function (host) { return host.querySelectorAll('.lc-task-side'); }],
    [/^\.awsui-app-layout__content$|^\.awsui-app-layout$/, function (host) { return host.querySelectorAll('.lc-task-main'); }],
    [/^\.awsui-modal-dialog$|^\.awsui-modal-content$|^awsui-modal$/, dialogs],
    [/^canvas\.upper-canvas$|^\.upper-canvas$/, function (host) { return host.querySelectorAll('canvas.lc-top'); }],
    [/^canvas\.lower-canvas$|^\.lower-canvas$/, function (host) { return host.querySelectorAll('canvas.lc-canvas:not(.lc-top)'); }],
    [/^canvas$/, function (host) { return host.querySelectorAll('canvas.lc-top'); }],
    [/^crowd-form$/, function (host) {
      var form = host.querySelector('crowd-form') || host.closest('crowd-form');
      return form ? [form] : [];
    }],
  ];

  function parts(host, selector) {
    var s = String(selector).trim();
    for (var i = 0; i < PARTS.length; i++) {
      if (PARTS[i][0].test(s)) return Array.prototype.slice.call(PARTS[i][1](host));
    }
    try {
      return Array.prototype.slice.call(host.querySelectorAll(s));
    } catch (err) {
      return [];
    }
  }

  C.afterBuild.push(function (host) {
    if (host.shadowRoot || !host.querySelector(':scope > .lc-task')) return;
    var root;
    try {
      root = host.attachShadow({ mode: 'open' });
    } catch (err) {
      return; // an element that cannot host a shadow root keeps its light DOM only
    }
    root.appendChild(document.createElement('slot'));
    root.querySelector = function (selector) {
      return fragmentQuery.call(root, selector) || parts(host, selector)[0] || null;
    };
    root.querySelectorAll = function (selector) {
      var own = Array.prototype.slice.call(fragmentQueryAll.call(root, selector));
      return own.length ? own : parts(host, selector);
    };
  });
})();
