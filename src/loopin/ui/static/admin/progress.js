// Shared by the admin pages that follow long-running work (batch jobs, exports): every
// second, fetch the status of each open row and show it; when one has ended, load the page
// again so its final state (reason, bad images, download link) shows.
//
//   loopinFollowProgress({
//     rows: function () { ... the rows still open ... },
//     statusUrl: function (row) { ... its status URL ... },
//     show: function (row, status) { ... update the row; return true once it ended ... },
//   });
window.loopinFollowProgress = function (options) {
  'use strict';

  function poll() {
    var rows = options.rows();
    if (!rows.length) return;
    Promise.all(rows.map(function (row) {
      return fetch(options.statusUrl(row), { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (status) { return status ? options.show(row, status) : false; })
        .catch(function () { return false; });
    })).then(function (ended) {
      if (ended.some(Boolean)) {
        location.replace(location.pathname);
        return;
      }
      setTimeout(poll, 1000);
    });
  }

  setTimeout(poll, 500);
};
