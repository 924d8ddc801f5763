// The gold page: upload a JSON Lines file of gold items (read in the browser, posted as
// text with the session's CSRF token); the server adds all of them or none.
(function () {
  'use strict';
  var form = document.getElementById('gold-upload');
  if (!form) return;
  var file = document.getElementById('gold-file');
  var errorBox = document.getElementById('gold-upload-error');
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    if (!file.files || !file.files[0]) {
      errorBox.textContent = 'Choose a JSON Lines file first.';
      errorBox.hidden = false;
      return;
    }
    file.files[0].text().then(function (text) {
      return window.loopinAdmin.post(form.dataset.url, text, 'application/x-ndjson');
    }).then(function () {
      window.location.assign(form.dataset.done);
    }).catch(function (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
    });
  });
})();
