// loopin worker console: the countdown to the time limit, and the bridge to the sandboxed
// task frame (which has an opaque origin: its answer arrives by postMessage).
(function () {
  'use strict';

  var timer = document.getElementById('timer');
  var frame = document.getElementById('task-frame');
  var submitButton = document.getElementById('submit-button');
  var submitForm = document.getElementById('submit-form');
  var answerField = document.getElementById('answer');
  var expired = false;

  function showTimeLeft() {
    var deadline = Date.now() + Number(timer.dataset.secondsLeft) * 1000;
    var label = document.getElementById('time-left');
    function tick() {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      label.textContent = Math.floor(left / 60) + ':' + String(left % 60).padStart(2, '0');
      timer.classList.toggle('low', left < 60);
      if (left === 0) {
        expired = true;
        submitButton.disabled = true;
        document.getElementById('expired').hidden = false;
        return;
      }
      setTimeout(tick, 1000 - (Date.now() % 1000) + 5);
    }
    tick();
  }

  function bridgeFrame() {
    // Ask whether the task is ready, in case it said so before this script listened.
    function hello() { frame.contentWindow.postMessage({ type: 'loopin:hello' }, '*'); }
    frame.addEventListener('load', hello);
    hello();
    submitButton.addEventListener('click', function () {
      // The crowd-form in the frame validates, assembles its answer and posts it back.
      frame.contentWindow.postMessage({ type: 'loopin:submit' }, '*');
    });
    window.addEventListener('message', function (event) {
      if (event.source !== frame.contentWindow || !event.data) return;
      if (event.data.type === 'loopin:ready') {
        submitButton.disabled = expired;
      } else if (event.data.type === 'loopin:answer' && !expired) {
        submitButton.disabled = true;
        submitButton.textContent = 'Submitting…';
        answerField.value = JSON.stringify(event.data.answer);
        submitForm.submit();
      }
    });
  }

  if (timer) showTimeLeft();
  if (frame && submitForm) bridgeFrame();
})();
