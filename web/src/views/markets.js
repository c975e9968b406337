// Every market with its live prices, the last day's change, volume and a sparkline. Each row
// listens to its own market: a change to one market re-renders that row and no other.
import { memo } from 'preact/compat';
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api.js';
import { change, coins, pct } from '../format.js';
import { useMarket } from '../hooks.js';
import { html } from '../html.js';
import * as store from '../store.js';

const FILTERS = [['open', 'Open'], ['closed', 'Closed'], ['resolved', 'Resolved'], ['all', 'All']];

// 25 hourly prices as a line; the scale is the chart's, 0 to 1
export function Sparkline({ values, label }) {
  if (!values || values.length < 2) return null;
  const w = 96;
  const h = 28;
  const points = values.map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${(h - v * h).toFixed(1)}`).join(' ');
  return html`<svg class="spark" viewBox=${`0 0 ${w} ${h}`} width=${w} height=${h} role="img" aria-label=${label}>
    <polyline points=${points} fill="none" stroke="currentColor" stroke-width="1.5" />
  </svg>`;
}

function Prices({ m }) {
  if (m.outcomes.length === 2 && m.outcomes[0].outcome === 'YES') {
    return html`<span class="price" data-testid="price">${pct(m.outcomes[0].price)}</span>`;
  }
  // a multi-outcome market as its outcomes' probabilities, likeliest first
  const top = [...m.outcomes].sort((a, b) => b.price - a.price).slice(0, 3);
  return html`<ul class="probs">${top.map((o) => html`<li key=${o.outcome}>
    <span class="name">${o.outcome}</span> <span class="price">${pct(o.price)}</span>
    <span class="bar" aria-hidden="true"><span style=${{ width: `${o.price * 100}%` }}></span></span></li>`)}</ul>`;
}

// the last day of every market (api.market_trends), read once, then again for the markets that
// changed: every few seconds, one call for those
const trends = new Map();
const trendListeners = new Map();
let stale = new Set();
let timer = null;
const TREND_EVERY_MS = 5000;

function putTrends(list) {
  for (const t of list) {
    const held = trends.get(t.market);
    if (held && JSON.stringify(held) === JSON.stringify(t)) continue; // nothing to draw again
    trends.set(t.market, t);
    for (const f of trendListeners.get(t.market) || []) f(t);
  }
}

function refreshStale() {
  timer = null;
  const codes = [...stale].slice(0, 300);
  stale = new Set([...stale].slice(300));
  if (stale.size) timer = setTimeout(refreshStale, 0);
  // (a market code is letters, digits, - and _: a PostgreSQL array literal as it is)
  if (codes.length) api.read('market_trends', { markets: `{${codes.join(',')}}` }).then(putTrends, () => {});
}

export function loadTrends() {
  return api.read('market_trends').then(putTrends, () => {});
}

store.onChanges((codes) => {
  for (const c of codes) stale.add(c);
  if (!timer) timer = setTimeout(refreshStale, TREND_EVERY_MS);
});

function useTrend(code) {
  const [t, setT] = useState(() => trends.get(code));
  useEffect(() => {
    if (!trendListeners.has(code)) trendListeners.set(code, new Set());
    trendListeners.get(code).add(setT);
    setT(trends.get(code));
    return () => trendListeners.get(code).delete(setT);
  }, [code]);
  return t;
}

const MarketRow = memo(({ code }) => {
  const m = useMarket(code);
  const trend = useTrend(code);
  if (!m) return null;
  const first = trend && trend.outcomes[0];
  return html`<tr data-market=${code}>
    <th scope="row"><a href=${`#/market/${encodeURIComponent(code)}`}>${m.title}</a>
      <span class="code">${code}</span></th>
    <td><${Prices} m=${m} /></td>
    <td class=${`num ${first && first.change_24h < 0 ? 'down' : 'up'}`}>${first ? change(first.change_24h) : '—'}
      ${first && html`<span class="sr-only"> (${first.outcome}, 24 h)</span>`}</td>
    <td>${coins(m.volume)}</td>
    <td class="chart-cell">${first && html`<${Sparkline} values=${first.spark} label=${`${first.outcome} over 24 hours`} />`}</td>
    <td><span class=${`status status-${m.status}`}>${m.status}</span></td>
  </tr>`;
});

export function MarketsView() {
  const [filter, setFilter] = useState('open');
  const [codes, setCodes] = useState(() => store.allMarkets().map((m) => m.code));
  useEffect(() => {
    loadTrends();
    return store.onList(() => setCodes(store.allMarkets().map((m) => m.code)));
  }, []);
  // a market's status changes without the list changing: the filter reads the store when drawn
  const shown = codes.filter((c) => filter === 'all' || store.market(c)?.status === filter);
  return html`<section>
    <h1>Markets</h1>
    <div class="filters" role="group" aria-label="Show markets">
      ${FILTERS.map(([key, label]) => html`<button type="button" key=${key} aria-pressed=${filter === key}
        onClick=${() => setFilter(key)}>${label}</button>`)}
    </div>
    <div class="table-wrap">
    <table class="markets" data-testid="markets">
      <caption class="sr-only">Markets, with their prices</caption>
      <colgroup><col class="c-market" /><col class="c-price" /><col class="c-change" /><col class="c-volume" />
        <col class="c-spark" /><col class="c-status" /></colgroup>
      <thead><tr><th scope="col">Market</th><th scope="col">Price</th><th scope="col">24 h</th>
        <th scope="col">Volume</th><th scope="col"><span class="sr-only">Last 24 hours</span></th><th scope="col">Status</th></tr></thead>
      <tbody>${shown.map((c) => html`<${MarketRow} key=${c} code=${c} />`)}</tbody>
    </table>
    </div>
    ${shown.length === 0 && html`<p class="note">No ${filter === 'all' ? '' : filter} markets.</p>`}
  </section>`;
}
