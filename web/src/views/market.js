// One market: its prices (live), the candle chart, the ticket, limit and stop orders, the
// book's depth with the market maker between levels, and the tape.
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api.js';
import { coins, pct, shares, time, when } from '../format.js';
import { useLoad, useMarket, useOnChange } from '../hooks.js';
import { html } from '../html.js';
import * as store from '../store.js';
import { PriceChart } from './chart.js';
import { LimitForm, OpenOrders, StopForm } from './orders.js';
import { Ticket } from './ticket.js';

function Book({ code, outcomes }) {
  const [outcome, setOutcome] = useState(outcomes[0]);
  const [format, setFormat] = useState('price');
  const [book, error, reload] = useLoad(() => api.read('book', { market: code, outcome, depth: 8, format }), [code, outcome, format]);
  useOnChange(code, reload, 500);
  const side = book && book.outcomes[0];
  const odds = format === 'odds';
  const rows = (levels, label) => html`<table class="levels">
    <caption>${label}</caption>
    <thead><tr><th scope="col">${odds ? 'Odds' : 'Price'}</th><th scope="col">${odds ? 'Stake' : 'Shares'}</th><th scope="col">Orders</th></tr></thead>
    <tbody>${(levels || []).map((l) => html`<tr key=${l.price ?? l.odds}><td>${odds ? l.odds : l.price}</td>
      <td>${shares(odds ? l.stake ?? l.shares : l.shares)}</td><td>${l.orders}</td></tr>`)}</tbody></table>`;
  return html`<section class="card" aria-labelledby="book-title">
    <div class="row"><h2 id="book-title">Book</h2>
      <label class="inline">Outcome <select value=${outcome} onChange=${(e) => setOutcome(e.target.value)}>
        ${outcomes.map((o) => html`<option key=${o} value=${o}>${o}</option>`)}</select></label>
      <div class="filters" role="group" aria-label="Book form">
        <button type="button" aria-pressed=${!odds} onClick=${() => setFormat('price')}>Price</button>
        <button type="button" aria-pressed=${odds} onClick=${() => setFormat('odds')}>Back / lay</button>
      </div></div>
    ${error && html`<p class="error">${api.explain(error)}</p>`}
    ${side && html`<div class="book" data-testid="book">
      ${rows(odds ? side.back : side.bids, odds ? 'Back' : 'Bids')}
      ${rows(odds ? side.lay : side.asks, odds ? 'Lay' : 'Asks')}
    </div>
    ${side.amm && side.amm.length > 0 && html`<table class="levels amm"><caption>The market maker between levels</caption>
      <thead><tr><th scope="col">From</th><th scope="col">To</th><th scope="col">Shares</th></tr></thead>
      <tbody>${side.amm.map((a, i) => html`<tr key=${i}><td>${a.from}</td><td>${a.to}</td><td>${shares(a.shares)}</td></tr>`)}</tbody></table>`}
    <p class="note">Book sequence ${book.seq}.</p>`}
  </section>`;
}

function Tape({ code }) {
  const [trades, , reload] = useLoad(() => api.read('market_trades', { market: code, max_rows: 15 }), [code]);
  useOnChange(code, reload, 300);
  return html`<section class="card" aria-labelledby="tape-title">
    <h2 id="tape-title">Recent trades</h2>
    ${trades && trades.length === 0 && html`<p class="note">No trades yet.</p>`}
    ${trades && trades.length > 0 && html`<div class="table-wrap"><table data-testid="tape">
      <thead><tr><th scope="col">Time</th><th scope="col">Outcome</th><th scope="col">Side</th><th scope="col">Shares</th><th scope="col">Price</th></tr></thead>
      <tbody>${trades.map((t, i) => html`<tr key=${`${t.at}-${i}`}><td>${time(t.at)}</td><td>${t.outcome}</td>
        <td class=${t.side}>${t.side}</td><td>${shares(t.shares)}</td><td>${t.price}</td></tr>`)}</tbody></table></div>`}
  </section>`;
}

export function MarketView({ code }) {
  const m = useMarket(code);
  const [missing, setMissing] = useState(null);
  useEffect(() => {
    if (!store.market(code)) {
      api.read('get_market', { market: code }).then((got) => store.putMarkets([got]), (e) => setMissing(api.explain(e)));
    }
  }, [code]);
  if (!m) return html`<section><h1>${code}</h1><p class="note" role="status">${missing || 'Loading…'}</p></section>`;
  const names = m.outcomes.map((o) => o.outcome);
  return html`<section class="market">
    <p><a href="#/">← Markets</a></p>
    <h1>${m.title}</h1>
    <p class="meta"><span class="code">${m.code}</span> · <span class=${`status status-${m.status}`} data-testid="market-status">${m.status}</span>
      · volume ${coins(m.volume)} · fee ${pct(m.fee_rate)}${m.close_at ? html` · closes ${when(m.close_at)}` : ''}</p>
    <ul class="outcomes" data-testid="outcomes">${m.outcomes.map((o) => html`<li key=${o.outcome}>
      <span class="name">${o.outcome}</span> <strong data-testid=${`price-${o.outcome}`}>${pct(o.price)}</strong>
      <span class="bar" aria-hidden="true"><span style=${{ width: `${o.price * 100}%` }}></span></span></li>`)}</ul>
    ${m.resolution && html`<p class="ok">${m.resolution.void ? 'Voided: every trade was refunded.' : `Resolved: ${Object.entries(m.resolution.payouts).filter(([, w]) => w > 0).map(([k]) => k).join(', ')}.`}</p>`}
    <div class="columns">
      <div class="main-col"><${PriceChart} code=${code} outcomes=${names} /><${Book} code=${code} outcomes=${names} /><${Tape} code=${code} /></div>
      <div class="side-col"><${Ticket} m=${m} /><${LimitForm} m=${m} /><${StopForm} m=${m} /><${OpenOrders} market=${code} /></div>
    </div>
  </section>`;
}
