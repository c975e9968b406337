// One EventSource on /api/v1/stream. The browser resumes a dropped stream with Last-Event-ID
// by itself; when the server refuses it (503 while the database is away) EventSource gives up,
// so we open a new one from the last cursor (?since=). The status says whether it is live.
// A stream opened without a cursor starts from the server's cursor of the moment, and shows only
// what changes after it: onFresh is called once it is open, to read the markets as they are
// (read after the cursor, they are no older than it, so nothing falls between them).

export function connect({ onBatch, onStatus, onFresh }) {
  let cursor = null;
  let source = null;
  let timer = null;

  function open() {
    const es = new EventSource(cursor ? `/api/v1/stream?since=${encodeURIComponent(cursor)}` : '/api/v1/stream');
    let fresh = !cursor; // (the browser's own reconnections resume it from its last event id)
    source = es;
    es.onopen = () => {
      onStatus('live');
      if (fresh && onFresh) onFresh();
      fresh = false;
    };
    es.addEventListener('changes', (e) => {
      cursor = e.lastEventId || cursor;
      onBatch(JSON.parse(e.data));
    });
    es.onmessage = (e) => { cursor = e.lastEventId || cursor; };
    es.onerror = () => {
      onStatus('reconnecting');
      if (es.readyState === EventSource.CLOSED) {
        clearTimeout(timer);
        timer = setTimeout(open, 1000);
      }
    };
  }
  open();
  return () => { clearTimeout(timer); source.close(); };
}
