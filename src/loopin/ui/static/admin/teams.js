// Teams pages: "Copy" buttons (data-copy) for the sign-in address and invitation links.
(function () {
  'use strict';

  function selectBeside(button) {  // no clipboard access (plain http): select the text for Ctrl+C
    var code = button.parentNode.querySelector('code');
    if (!code) return;
    var range = document.createRange();
    range.selectNodeContents(code);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest && event.target.closest('[data-copy]');
    if (!button) return;
    if (!navigator.clipboard || !window.isSecureContext) {
      selectBeside(button);
      return;
    }
    navigator.clipboard.writeText(button.getAttribute('data-copy')).then(function () {
      button.textContent = 'Copied';
      setTimeout(function () { button.textContent = 'Copy'; }, 1500);
    }, function () { selectBeside(button); });
  });
})();
