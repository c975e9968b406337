// One EventSource on /api/v1/stream. The browser resumes a dropped stream with Last-Event-ID
// by itself; when the server refuses it (503 while the database is away) EventSource gives up,
// so we open a new one from the last cursor (?since=). The status says whether it is live.

export function connect({ onBatch, onStatus }) {
  let cursor = null;
  let source = null;
  let timer = null;

  function open() {
    source = new EventSource(cursor ? `/api/v1/stream?since=${encodeURIComponent(cursor)}` : '/api/v1/stream');
    source.onopen = () => onStatus('live');
    source.addEventListener('changes', (e) => {
      cursor = e.lastEventId || cursor;
      onBatch(JSON.parse(e.data));
    });
    source.onmessage = (e) => { cursor = e.lastEventId || cursor; };
    source.onerror = () => {
      onStatus('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        clearTimeout(timer);
        timer = setTimeout(open, 1000);
      }
    };
  }
  open();
  return () => { clearTimeout(timer); source.close(); };
}
