// The trader's account: balance, locked collateral and escrow, positions with cost basis,
// value and P&L (all from api.me), open orders with cancel, and trade history.
import { useEffect } from 'preact/hooks';
import * as api from '../api.js';
import { coins, shares, when } from '../format.js';
import { useLoad, useOnChange } from '../hooks.js';
import { html } from '../html.js';
import { refreshMe, useMe } from '../session.js';
import { OpenOrders } from './orders.js';

export function PortfolioView() {
  const me = useMe();
  useEffect(() => { refreshMe(); }, []);
  // positions are marked to market: read the account again when any market changes
  useOnChange('*', refreshMe, 1000);
  const [trades, , reloadTrades] = useLoad(() => (me ? api.read('my_trades', { max_rows: 100, latest: true }) : Promise.resolve([])), [me && me.user_id]);
  useEffect(() => { reloadTrades(); }, [me && me.balance]);
  if (!me) return html`<section><h1>Portfolio</h1><p><a href="#/login">Log in</a> to see your account.</p></section>`;
  return html`<section class="portfolio">
    <h1>Portfolio</h1>
    <dl class="summary" data-testid="account">
      <div><dt>Balance</dt><dd data-testid="account-balance">${coins(me.balance)}</dd></div>
      <div><dt>Locked collateral</dt><dd>${coins(me.locked)}</dd></div>
      <div><dt>Escrow of open orders</dt><dd>${coins(me.escrow)}</dd></div>
    </dl>
    <section class="card" aria-labelledby="positions-title">
      <h2 id="positions-title">Positions</h2>
      ${me.positions.length === 0 ? html`<p class="note">No positions yet: pick a <a href="#/">market</a>.</p>` : html`<div class="table-wrap"><table data-testid="positions">
        <thead><tr><th scope="col">Market</th><th scope="col">Outcome</th><th scope="col">Shares</th><th scope="col">Cost basis</th>
          <th scope="col">Price</th><th scope="col">Value</th><th scope="col">P&L</th></tr></thead>
        <tbody>${me.positions.map((p) => html`<tr key=${`${p.market}/${p.outcome}`} data-position=${`${p.market}/${p.outcome}`}>
          <td><a href=${`#/market/${encodeURIComponent(p.market)}`}>${p.market}</a></td><td>${p.outcome}</td>
          <td>${shares(p.shares)}</td><td>${coins(p.cost_basis)}</td><td>${p.price}</td><td>${coins(p.value)}</td>
          <td class=${p.pnl < 0 ? 'down' : 'up'}>${coins(p.pnl)}</td></tr>`)}</tbody></table></div>`}
    </section>
    <${OpenOrders} />
    <section class="card" aria-labelledby="history-title">
      <h2 id="history-title">Trade history</h2>
      ${trades && trades.length === 0 && html`<p class="note">No trades yet.</p>`}
      ${trades && trades.length > 0 && html`<div class="table-wrap"><table data-testid="history">
        <thead><tr><th scope="col">When</th><th scope="col">Market</th><th scope="col">Outcome</th><th scope="col">Side</th>
          <th scope="col">Shares</th><th scope="col">Total</th></tr></thead>
        <tbody>${[...trades].reverse().map((t) => html`<tr key=${t.trade_id}><td>${when(t.at)}</td><td>${t.market}</td>
          <td>${t.outcome}</td><td>${t.side}</td><td>${shares(t.shares)}</td><td>${coins(t.total)}</td></tr>`)}</tbody></table></div>`}
    </section>
  </section>`;
}
