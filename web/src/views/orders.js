// Resting limit orders and stop-loss / take-profit orders on one market.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api.js';
import { html } from '../html.js';
import { refreshMe, useMe } from '../session.js';

function useSubmit(send) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      setDone(await send());
      refreshMe();
    } catch (err) {
      setError(api.explain(err));
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, done, submit };
}

export function LimitForm({ m }) {
  const [outcome, setOutcome] = useState(m.outcomes[0].outcome);
  const [side, setSide] = useState('buy');
  const [priceText, setPrice] = useState('');
  const [sharesText, setShares] = useState('10');
  const [tif, setTif] = useState('gtc');
  const key = useRef(api.newKey());
  useEffect(() => { key.current = api.newKey(); }, [outcome, side, priceText, sharesText, tif]);
  const s = useSubmit(async () => {
    const order = await api.call('place_order', { market: m.code, outcome, side, kind: 'limit', price: priceText,
      shares: sharesText, time_in_force: tif, client_order_id: key.current });
    key.current = api.newKey();
    return order;
  });
  return html`<form class="card order-form" onSubmit=${s.submit} aria-labelledby="limit-title">
    <h2 id="limit-title">Limit order</h2>
    <div class="grid2">
      <label>Side<select value=${side} onChange=${(e) => setSide(e.target.value)}>
        <option value="buy">Buy</option><option value="sell">Sell</option></select></label>
      <label>Outcome<select value=${outcome} onChange=${(e) => setOutcome(e.target.value)}>
        ${m.outcomes.map((o) => html`<option key=${o.outcome} value=${o.outcome}>${o.outcome}</option>`)}</select></label>
      <label>Price (0–1)<input inputmode="decimal" value=${priceText} placeholder=${String(m.tick)} onInput=${(e) => setPrice(e.target.value)} /></label>
      <label>Shares<input inputmode="decimal" value=${sharesText} onInput=${(e) => setShares(e.target.value)} /></label>
      <label>Time in force<select value=${tif} onChange=${(e) => setTif(e.target.value)}>
        <option value="gtc">Good till cancelled</option><option value="ioc">Immediate or cancel</option>
        <option value="fok">Fill or kill</option></select></label>
    </div>
    <button type="submit" disabled=${s.busy}>Place order</button>
    ${s.error && html`<p class="error" role="alert">${s.error}</p>`}
    ${s.done && html`<p class="ok" role="status" data-testid="order-done">Order ${s.done.order_id}: ${s.done.status}, ${s.done.filled} filled.</p>`}
  </form>`;
}

export function StopForm({ m }) {
  const [outcome, setOutcome] = useState(m.outcomes[0].outcome);
  const [kind, setKind] = useState('stop_loss');
  const [trigger, setTrigger] = useState('');
  const [sharesText, setShares] = useState('');
  const s = useSubmit(() => api.call('place_order', { market: m.code, outcome, kind, shares: sharesText, trigger_price: trigger }));
  return html`<form class="card order-form" onSubmit=${s.submit} aria-labelledby="stop-title" data-testid="stop-form">
    <h2 id="stop-title">Stop-loss / take-profit</h2>
    <div class="grid2">
      <label>Kind<select value=${kind} onChange=${(e) => setKind(e.target.value)}>
        <option value="stop_loss">Stop-loss</option><option value="take_profit">Take-profit</option></select></label>
      <label>Outcome<select value=${outcome} onChange=${(e) => setOutcome(e.target.value)}>
        ${m.outcomes.map((o) => html`<option key=${o.outcome} value=${o.outcome}>${o.outcome}</option>`)}</select></label>
      <label>Trigger price<input inputmode="decimal" name="trigger_price" value=${trigger} onInput=${(e) => setTrigger(e.target.value)} /></label>
      <label>Shares<input inputmode="decimal" name="stop_shares" value=${sharesText} onInput=${(e) => setShares(e.target.value)} /></label>
    </div>
    <button type="submit" disabled=${s.busy}>Place ${kind === 'stop_loss' ? 'stop-loss' : 'take-profit'}</button>
    ${s.error && html`<p class="error" role="alert">${s.error}</p>`}
    ${s.done && html`<p class="ok" role="status" data-testid="stop-done">Order ${s.done.order_id} placed: it fires when ${outcome} reaches ${s.done.trigger_price}.</p>`}
  </form>`;
}

// the trader's open orders (book and conditional), each with a cancel button
export function OpenOrders({ market }) {
  const me = useMe();
  const [error, setError] = useState(null);
  if (!me) return null;
  const orders = me.orders.filter((o) => !market || o.market === market);
  const more = (me.open_orders ?? 0) - me.orders.length;
  async function cancel(id) {
    setError(null);
    try {
      await api.call('cancel_order', { order_id: id });
      refreshMe();
    } catch (err) {
      setError(api.explain(err));
    }
  }
  return html`<section class="card" aria-labelledby="open-orders">
    <h2 id="open-orders">Open orders</h2>
    ${orders.length === 0 ? html`<p class="note">None.</p>` : html`<div class="table-wrap"><table data-testid="open-orders">
      <thead><tr><th scope="col">Order</th><th scope="col">Market</th><th scope="col">Kind</th><th scope="col">Side</th>
        <th scope="col">Outcome</th><th scope="col">Price / trigger</th><th scope="col">Remaining</th><th scope="col"><span class="sr-only">Cancel</span></th></tr></thead>
      <tbody>${orders.map((o) => html`<tr key=${o.order_id} data-order=${o.order_id}>
        <td>${o.order_id}</td><td>${o.market}</td><td>${o.kind.replace('_', ' ')}</td><td>${o.side || '—'}</td>
        <td>${o.outcome}</td><td>${o.price ?? o.trigger_price}</td><td>${o.remaining}</td>
        <td><button type="button" class="link" onClick=${() => cancel(o.order_id)}
          aria-label=${`Cancel order ${o.order_id}`}>Cancel</button></td></tr>`)}</tbody>
    </table></div>`}
    ${more > 0 && html`<p class="note" data-testid="more-orders">and ${more} older open orders (the newest 100 are shown).</p>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </section>`;
}
