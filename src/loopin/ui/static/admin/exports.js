// Exports page: follow the queued and running exports (their progress bars), and when one
// has finished, load the page again so its download link and dataset form show.
(function () {
  'use strict';

  function open(row) {
    var state = row.dataset.state;
    return state === 'queued' || state === 'running';
  }

  function poll() {
    var rows = Array.prototype.filter.call(document.querySelectorAll('tr[data-export]'), open);
    if (!rows.length) return;
    Promise.all(rows.map(function (row) {
      return fetch('/admin/exports/' + encodeURIComponent(row.dataset.export) + '/status', { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) {
          if (!job) return false;
          row.querySelector('progress').value = job.percent;
          row.querySelector('.state').textContent = job.state;
          row.querySelector('.count').textContent = job.done + ' / ' + job.total + ' loops';
          row.dataset.state = job.state;
          return !open(row);
        })
        .catch(function () { return false; });
    })).then(function (finished) {
      if (finished.some(Boolean)) {
        location.replace(location.pathname);
        return;
      }
      setTimeout(poll, 1000);
    });
  }

  setTimeout(poll, 500);
})();
