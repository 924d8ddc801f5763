// loopin worker console: the countdown to the time limit, the bridge to the sandboxed task
// frame (which has an opaque origin: its answer arrives by postMessage), and the task's
// draft, which the frame cannot keep itself (an opaque origin has no localStorage).
(function () {
  'use strict';

  // Drafts: one localStorage entry per worker and task, "loopin-draft.<worker>.<task>",
  // dropped on submit, release, decline and sign-out, and after a day in any case.
  var DRAFT = 'loopin-draft.';
  var DRAFT_LIFE_MS = 24 * 3600 * 1000;

  function storage() {
    try {
      return window.localStorage; // null or throwing where the browser keeps no storage
    } catch (err) {
      return null;
    }
  }

  function dropDrafts(keepFresh) {
    var store = storage();
    if (!store) return;
    Object.keys(store).forEach(function (key) {
      if (key.indexOf(DRAFT) !== 0) return;
      var saved = null;
      try {
        saved = JSON.parse(store.getItem(key));
      } catch (err) {
        // unreadable: dropped
      }
      if (!keepFresh || !saved || !(saved.savedAt > Date.now() - DRAFT_LIFE_MS)) store.removeItem(key);
    });
  }

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
    var draftKey = DRAFT + frame.dataset.draftKey;
    var store = storage();
    function dropDraft() {
      if (store) store.removeItem(draftKey);
    }
    document.querySelectorAll('form[data-drops-draft]').forEach(function (form) {
      form.addEventListener('submit', dropDraft);
    });
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
        var saved = store && JSON.parse(store.getItem(draftKey) || 'null');
        if (saved) frame.contentWindow.postMessage({ type: 'loopin:draft', draft: saved.draft }, '*');
      } else if (event.data.type === 'loopin:draft' && store && !expired) {
        try {
          store.setItem(draftKey, JSON.stringify({ savedAt: Date.now(), draft: event.data.draft }));
        } catch (err) {
          // storage full: the work stays on the page, only without a draft
        }
      } else if (event.data.type === 'loopin:answer' && !expired) {
        dropDraft();
        submitButton.disabled = true;
        submitButton.textContent = 'Submitting…';
        answerField.value = JSON.stringify(event.data.answer);
        submitForm.submit();
      }
    });
  }

  var signOut = document.getElementById('sign-out');
  if (signOut) signOut.addEventListener('submit', function () { dropDrafts(false); });
  dropDrafts(true);
  if (timer) showTimeLeft();
  if (frame && submitForm) bridgeFrame();
})();
