// Exports page: follow the queued and running exports (their progress bars).
(function () {
  'use strict';

  function open(row) {
    var state = row.dataset.state;
    return state === 'queued' || state === 'running';
  }

  window.loopinFollowProgress({
    rows: function () {
      return Array.prototype.filter.call(document.querySelectorAll('tr[data-export]'), open);
    },
    statusUrl: function (row) {
      return '/admin/exports/' + encodeURIComponent(row.dataset.export) + '/status';
    },
    show: function (row, job) {
      row.querySelector('progress').value = job.percent;
      row.querySelector('.state').textContent = job.state;
      row.querySelector('.count').textContent = job.done + ' / ' + job.total + ' loops';
      row.dataset.state = job.state;
      return !open(row);
    },
  });
})();
