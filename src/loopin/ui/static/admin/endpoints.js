// Endpoint page: reload while the endpoint is loading, and "Try it" (upload an image, see
// the model's boxes over it and the table of detections).
(function () {
  'use strict';

  var refresh = document.querySelector('[data-refresh-seconds]');
  if (refresh) setTimeout(function () { location.reload(); }, 1000 * Number(refresh.dataset.refreshSeconds));

  var section = document.getElementById('try');
  var form = document.getElementById('try-form');
  if (!section || !form) return;
  var fileInput = document.getElementById('try-file');
  var routeBox = document.getElementById('try-route');
  var button = document.getElementById('try-button');
  var errorBox = document.getElementById('try-error');
  var result = document.getElementById('try-result');
  var figure = document.getElementById('try-figure');
  var img = document.getElementById('try-image');
  var minScore = document.getElementById('try-min-score');
  var last = null;
  var objectUrl = null;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function cell(row, text, className) {
    var td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
  }

  function shown(answer) {
    var floor = Number(minScore.value) || 0;
    return answer.detections.filter(function (d) { return d.score >= floor; });
  }

  function drawBoxes() {
    if (!last || !img.naturalWidth) return;
    window.loopinBoxes.draw(figure, shown(last).map(function (d) {
      return { left: d.left, top: d.top, width: d.right - d.left, height: d.bottom - d.top, label: d.label, score: d.score, kind: 'model' };
    }));
  }

  function summary(answer) {
    var n = answer.detections.length;
    var text = n + (n === 1 ? ' detection' : ' detections') + ' in ' + Math.round(answer.inference_ms) + ' ms (' +
      answer.image.width + ' × ' + answer.image.height + ' pixels, model ' + answer.model.name + ').';
    var r = answer.routing;
    if (!r) text += ' This endpoint does not route images to people.';
    else if (r.reason === 'low-confidence') text += ' At the threshold ' + r.threshold.toFixed(2) + ' this image would go to people (flow ' + r.flow + '): ' + answer.doubtful.filter(Boolean).length + ' doubtful.';
    else if (r.reason === 'audit') text += ' This image would go to people for an audit (flow ' + r.flow + ').';
    else text += ' At the threshold ' + r.threshold.toFixed(2) + ' this image would not go to people.';
    return text;
  }

  function loopLink(loop) {
    // "Human loop started: <name>", the name linking to the loop's page.
    var span = document.createElement('span');
    span.appendChild(document.createTextNode(' Human loop started: '));
    var link = document.createElement('a');
    link.href = '/admin/loops/' + encodeURIComponent(loop.name);
    link.id = 'try-loop';
    link.textContent = loop.name;
    span.appendChild(link);
    span.appendChild(document.createTextNode('.'));
    return span;
  }

  function show(answer) {
    last = answer;
    var summaryLine = document.getElementById('try-summary');
    summaryLine.textContent = summary(answer);
    if (answer.human_loop) summaryLine.appendChild(loopLink(answer.human_loop));
    var body = document.querySelector('#try-detections tbody');
    body.textContent = '';
    answer.detections.forEach(function (d, i) {
      var row = document.createElement('tr');
      cell(row, String(i + 1), 'num');
      cell(row, d.label);
      cell(row, d.score.toFixed(3), 'num');
      cell(row, [d.left, d.top, d.right, d.bottom].map(function (v) { return Math.round(v); }).join(', '), 'num');
      cell(row, answer.doubtful[i] ? 'doubtful' : '', answer.doubtful[i] ? 'doubtful' : '');
      body.appendChild(row);
    });
    result.hidden = false;  // the boxes are drawn when the image has loaded
  }

  img.addEventListener('load', drawBoxes);
  minScore.addEventListener('input', drawBoxes);

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var file = fileInput.files[0];
    showError('');
    if (!file) { showError('Choose an image first.'); return; }
    if (file.size > Number(section.dataset.maxBytes)) {
      showError('This file is larger than 6 MiB, the most an endpoint takes.');
      return;
    }
    button.disabled = true;
    var url = section.dataset.tryUrl + (routeBox && routeBox.checked ? '?route=true' : '');
    window.loopinAdmin.post(url, file, file.type || 'application/octet-stream').then(function (answer) {
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(file);
      last = null;
      img.src = objectUrl;
      show(answer);
    }).catch(function (error) {
      result.hidden = true;
      showError(error.message);
    }).then(function () { button.disabled = false; });
  });
})();
