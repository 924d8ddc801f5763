// The template editor: line numbers beside the code areas, a preview that follows the
// edits (checked first, so errors show here with their line), and the preview's answer.
(function () {
  'use strict';

  var form = document.getElementById('editor-form');
  var template = document.getElementById('template-content');
  var sample = document.getElementById('sample-input');
  var previewButton = document.getElementById('preview-button');
  var frame = document.getElementById('preview-frame');
  var problem = document.getElementById('problem');
  var problemText = document.getElementById('problem-text');
  var problemLine = document.getElementById('problem-line');
  var state = document.getElementById('preview-state');
  var answer = document.getElementById('answer');
  var answerJson = document.getElementById('answer-json');
  if (!form || !template || !sample || !frame) return;

  var areas = { template: template, input: sample };
  var shown = null; // the problem shown now: {where, line, message}

  // -- line numbers -------------------------------------------------------------------
  function gutterOf(textarea) {
    return textarea.parentNode.querySelector('.gutter');
  }

  function numberLines(textarea) {
    var gutter = gutterOf(textarea);
    var count = textarea.value.split('\n').length;
    if (gutter.childElementCount !== count) {
      var fragment = document.createDocumentFragment();
      for (var i = 1; i <= count; i++) {
        var line = document.createElement('span');
        line.textContent = String(i);
        fragment.appendChild(line);
      }
      gutter.replaceChildren(fragment);
    }
    markLine();
    gutter.scrollTop = textarea.scrollTop;
  }

  function markLine() {
    [template, sample].forEach(function (textarea) {
      var gutter = gutterOf(textarea);
      var marked = gutter.querySelector('.bad');
      if (marked) marked.classList.remove('bad');
      if (shown && shown.line && areas[shown.where] === textarea) {
        var line = gutter.children[Math.min(shown.line, gutter.childElementCount) - 1];
        if (line) line.classList.add('bad');
      }
    });
  }

  [template, sample].forEach(function (textarea) {
    textarea.addEventListener('scroll', function () { gutterOf(textarea).scrollTop = textarea.scrollTop; });
    numberLines(textarea);
  });

  // -- problems -------------------------------------------------------------------------
  function showProblem(found) {
    shown = found;
    problem.hidden = !found;
    problemText.textContent = found ? found.message : '';
    problemLine.hidden = !(found && found.line && areas[found.where]);
    if (found && found.line) problemLine.textContent = 'Go to line ' + found.line;
    markLine();
  }

  if (problem.dataset.where) {
    showProblem({ where: problem.dataset.where, line: Number(problem.dataset.line) || null, message: problemText.textContent });
  }

  problemLine.addEventListener('click', function () {
    var textarea = shown && areas[shown.where];
    if (!textarea) return;
    var lines = textarea.value.split('\n');
    var index = Math.min(shown.line, lines.length) - 1;
    var start = lines.slice(0, index).join('\n').length + (index > 0 ? 1 : 0);
    textarea.focus();
    textarea.setSelectionRange(start, start + lines[index].length);
    var lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
    textarea.scrollTop = Math.max(0, (index - 3) * lineHeight);
  });

  // -- warnings (e.g. crowd-* elements loopin does not know) ------------------------------
  var warnings = document.getElementById('warnings');
  var warningItems = document.getElementById('warning-items');

  function showWarnings(list) {
    if (!warnings) return;
    warningItems.replaceChildren.apply(warningItems, list.map(function (text) {
      var item = document.createElement('li');
      item.textContent = text;
      return item;
    }));
    warnings.hidden = !list.length;
  }

  // -- preview ----------------------------------------------------------------------------
  var timer = null;
  var generation = 0;

  function refresh() {
    clearTimeout(timer);
    var mine = ++generation;
    state.textContent = 'checking…';
    var body = JSON.stringify({ content: template.value, input: sample.value });
    window.loopinAdmin.post('/admin/templates/check', body).then(function (data) {
      if (mine !== generation) return;
      showProblem(data.problem);
      showWarnings(data.warnings || []);
      if (data.problem) {
        state.textContent = 'not updated: fix the error';
        return;
      }
      state.textContent = 'as a worker sees it';
      answer.hidden = true;
      form.requestSubmit(previewButton);
    }, function (error) {
      if (mine !== generation) return;
      state.textContent = 'not updated';
      showProblem({ where: '', line: null, message: error.message });
    });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 500);
  }

  [template, sample].forEach(function (textarea) {
    textarea.addEventListener('input', function () {
      numberLines(textarea);
      later();
    });
  });

  previewButton.addEventListener('click', function (event) {
    event.preventDefault();
    refresh();
  });

  // The task in the frame answers by postMessage, as it does in the worker console.
  document.getElementById('try-submit').addEventListener('click', function () {
    frame.contentWindow.postMessage({ type: 'loopin:submit' }, '*');
  });
  window.addEventListener('message', function (event) {
    if (event.source !== frame.contentWindow || !event.data || event.data.type !== 'loopin:answer') return;
    answerJson.textContent = JSON.stringify(event.data.answer, null, 2);
    answer.hidden = false;
  });

  refresh();
})();
