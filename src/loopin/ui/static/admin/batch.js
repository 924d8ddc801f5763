// Batch jobs: follow the running jobs' progress (the list and a job's page).
(function () {
  'use strict';

  window.loopinFollowProgress({
    rows: function () {
      return Array.prototype.filter.call(document.querySelectorAll('[data-batch]'), function (row) {
        return row.dataset.open === 'yes';
      });
    },
    statusUrl: function (row) {
      return '/admin/batch/' + encodeURIComponent(row.dataset.batch) + '/status';
    },
    show: function (row, job) {
      row.querySelector('progress').value = job.percent;
      row.querySelector('.state').textContent = job.status;
      row.querySelector('.count').textContent =
        job.done + ' / ' + job.total + (job.failed ? ', ' + job.failed + ' bad' : '');
      row.querySelector('.routed').textContent = job.routed;
      return !job.open;
    },
  });
})();
