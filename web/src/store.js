// What the app knows of the markets, kept from api.list_markets and the stream's batches, with
// listeners per market: a change to one market wakes only what shows that market.

const markets = new Map();
const listeners = new Map(); // code -> Set of callbacks
const listListeners = new Set(); // woken when a market appears
const changeListeners = new Set(); // woken with every batch (codes changed)

function wake(code) {
  for (const f of listeners.get(code) || []) f(markets.get(code));
}

export function putMarkets(list) {
  let added = false;
  for (const m of list) {
    if (!markets.has(m.code)) added = true;
    const old = markets.get(m.code);
    if (old && old.version > m.version) continue; // an older view than the one held
    markets.set(m.code, m);
    wake(m.code);
  }
  if (added) for (const f of listListeners) f();
}

export function batch(payload) {
  putMarkets(payload.markets || []);
  const codes = new Set((payload.markets || []).map((m) => m.code));
  for (const b of payload.book || []) codes.add(b.market);
  if (codes.size) for (const f of changeListeners) f(codes);
}

export const market = (code) => markets.get(code);
export const allMarkets = () => [...markets.values()];

export function onMarket(code, f) {
  if (!listeners.has(code)) listeners.set(code, new Set());
  listeners.get(code).add(f);
  return () => listeners.get(code).delete(f);
}

export function onList(f) {
  listListeners.add(f);
  return () => listListeners.delete(f);
}

export function onChanges(f) {
  changeListeners.add(f);
  return () => changeListeners.delete(f);
}
