// zohook console: live updates through server-sent events. The pages work
// without it; this only refreshes what they show. No HTML is built here:
// the list's rows come from the server, rendered (and escaped) by Go's
// html/template.
(function () {
  'use strict';
  var prefix = document.body.getAttribute('data-prefix') || '/console';
  var live = document.getElementById('live');

  function stream(query, onEvent) {
    if (!window.EventSource) { return; }
    var es = new EventSource(prefix + '/api/events/stream' + (query ? '?' + query : ''));
    es.addEventListener('open', function () { if (live) { live.hidden = false; } });
    es.addEventListener('error', function () { if (live) { live.hidden = true; } });
    es.addEventListener('event', onEvent);
    es.addEventListener('reset', onEvent);
  }

  // Events list: refresh the rows when anything matching the filters changes.
  var table = document.querySelector('[data-live-rows]');
  if (table) {
    var query = table.getAttribute('data-query') || '';
    var body = table.querySelector('tbody');
    var busy = false, again = false;
    var refresh = function () {
      if (busy) { again = true; return; }
      busy = true;
      fetch(prefix + '/events/rows' + (query ? '?' + query : ''), { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { body.innerHTML = html; })
        .catch(function () {})
        .then(function () {
          busy = false;
          if (again) { again = false; setTimeout(refresh, 150); }
        });
    };
    var timer = null;
    stream(query, function () {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; refresh(); }, 150);
    });
  }

  // One event: reload when it differs from what the page shows (a run
  // ended, a replay started). The stream sends the current state first.
  var ev = document.querySelector('[data-live-event]');
  if (ev) {
    var reloading = false;
    stream('id=' + encodeURIComponent(ev.getAttribute('data-live-event')), function (e) {
      var s;
      try { s = JSON.parse(e.data); } catch (err) { return; }
      if (!s.id) { return; }
      if (reloading || (s.status === ev.getAttribute('data-status') && String(s.runs) === ev.getAttribute('data-runs') &&
          String(s.seq) === ev.getAttribute('data-seq'))) { return; }
      reloading = true;
      setTimeout(function () {
        var u = new URL(window.location.href);
        u.search = '';
        window.location.replace(u.toString());
      }, 300);
    });
  }

  // Dead letters: select all.
  var all = document.querySelector('[data-select-all]');
  if (all) {
    all.addEventListener('change', function () {
      document.querySelectorAll('input[name=id]').forEach(function (b) { b.checked = all.checked; });
    });
  }
})();
