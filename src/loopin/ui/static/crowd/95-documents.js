// Documents in frames. The task runs in a sandboxed frame, and Chromium shows no PDF in a
// sandboxed frame (every sandbox disables its viewer), so a template's <iframe> of a PDF
// would stay blank. Under each frame, embed or object whose address ends in .pdf, a link
// opens the document in a new tab, which leaves the sandbox in the worker console.
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  function pdfUrl(el) {
    var src = el.getAttribute(el.localName === 'object' ? 'data' : 'src');
    if (!src) return null;
    try {
      var url = new URL(src, document.baseURI);
      return /\.pdf$/i.test(url.pathname) && /^https?:$/.test(url.protocol) ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  C.linkDocuments = function (root) {
    root.querySelectorAll('iframe, embed, object').forEach(function (el) {
      var href = pdfUrl(el);
      if (!href || el._lcDocLink) return;
      el._lcDocLink = C.h('a.lc-open-document', { href: href, target: '_blank', rel: 'noopener', text: 'Open the document in a new tab' });
      el.insertAdjacentElement('afterend', C.h('p.lc-document-link', {}, [el._lcDocLink]));
    });
  };

  document.addEventListener('DOMContentLoaded', function () {
    C.linkDocuments(document);
  });
})();
