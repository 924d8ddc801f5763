// loopin admin console, on every page: confirmation before destructive actions
// (<form data-confirm="...">), Back buttons, and the CSRF token for page scripts.
(function () {
  'use strict';

  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  document.addEventListener('click', function (event) {
    if (event.target.closest && event.target.closest('[data-back]')) history.back();
  });

  // For page scripts: POST JSON or bytes with the session's CSRF token; resolves to the
  // parsed JSON answer, rejects with the server's error message.
  window.loopinAdmin = {
    post: function (url, body, contentType) {
      return fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': document.body.dataset.csrf || '', 'Content-Type': contentType || 'application/json' },
        body: body
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) {
            var error = new Error((data.error && data.error.message) || ('The server answered ' + response.status + '.'));
            error.code = data.error && data.error.code;
            throw error;
          }
          return data;
        });
      });
    }
  };
})();
