// Batch jobs: follow the running jobs' progress (the list and a job's page); when one ends,
// load the page again so its final state, reason and bad images show.
(function () {
  'use strict';

  function poll() {
    var rows = Array.prototype.filter.call(document.querySelectorAll('[data-batch]'), function (row) {
      return row.dataset.open === 'yes';
    });
    if (!rows.length) return;
    Promise.all(rows.map(function (row) {
      return fetch('/admin/batch/' + encodeURIComponent(row.dataset.batch) + '/status', { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) {
          if (!job) return false;
          row.querySelector('progress').value = job.percent;
          row.querySelector('.state').textContent = job.status;
          row.querySelector('.count').textContent =
            job.done + ' / ' + job.total + (job.failed ? ', ' + job.failed + ' bad' : '');
          row.querySelector('.routed').textContent = job.routed;
          return !job.open;
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
