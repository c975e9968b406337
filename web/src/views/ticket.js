// The ticket: buy or sell by shares or by budget. As the trader types, the exact terms come
// from api.quote (with the slippage guard for the chosen tolerance); the trade sends that
// guard and an idempotency key, kept across retries of the same submission.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api.js';
import { coins, pct, price, shares } from '../format.js';
import { html } from '../html.js';
import { refreshMe, useMe } from '../session.js';

const TOLERANCES = [['0.005', '0.5 %'], ['0.01', '1 %'], ['0.02', '2 %'], ['0.05', '5 %']];

export function Ticket({ m }) {
  const me = useMe();
  const [outcome, setOutcome] = useState(m.outcomes[0].outcome);
  const [side, setSide] = useState('buy');
  const [by, setBy] = useState('shares');
  const [amount, setAmount] = useState('10');
  const [tolerance, setTolerance] = useState('0.01');
  const [quote, setQuote] = useState(null);
  const [quoteError, setQuoteError] = useState(null);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const key = useRef(api.newKey());
  const asked = useRef(0);
  const open = m.status === 'open';
  const terms = { market: m.code, outcome, side, [by === 'spend' && side === 'buy' ? 'spend' : 'shares']: amount.trim() };

  // a new intent is a new submission
  useEffect(() => { key.current = api.newKey(); }, [outcome, side, by, amount]);
  useEffect(() => {
    if (!open || !amount.trim()) { setQuote(null); setQuoteError(null); return undefined; }
    const n = ++asked.current;
    const timer = setTimeout(() => {
      api.read('quote', { ...terms, tolerance }).then(
        (q) => { if (n === asked.current) { setQuote(q); setQuoteError(null); } },
        (e) => { if (n === asked.current) { setQuote(null); setQuoteError(api.explain(e)); } },
      );
    }, 200);
    return () => clearTimeout(timer);
  }, [outcome, side, by, amount, tolerance, m.version, open]);

  async function submit(e) {
    e.preventDefault();
    if (!quote) return;
    setBusy(true);
    setError(null);
    setResult(null);
    const guard = side === 'buy' ? { max_total: quote.max_total } : { min_total: quote.min_total };
    try {
      const receipt = await api.call('trade', { ...terms, ...guard, idempotency_key: key.current });
      setResult(receipt);
      key.current = api.newKey();
      refreshMe();
    } catch (err) {
      // no answer: the trade may have run; the same key makes pressing again safe
      setError(err.status === 0 ? `${api.explain(err)}. Press ${side === 'buy' ? 'Buy' : 'Sell'} again: it trades once.` : api.explain(err));
    } finally {
      setBusy(false);
    }
  }

  const position = me && me.positions.find((p) => p.market === m.code && p.outcome === outcome);
  return html`<section class="card ticket" aria-labelledby="ticket-title">
    <h2 id="ticket-title">Trade</h2>
    <form onSubmit=${submit}>
      <div class="seg" role="group" aria-label="Side">
        ${['buy', 'sell'].map((s) => html`<button type="button" key=${s} aria-pressed=${side === s}
          class=${s} onClick=${() => setSide(s)}>${s === 'buy' ? 'Buy' : 'Sell'}</button>`)}
      </div>
      <label for="t-outcome">Outcome</label>
      <select id="t-outcome" value=${outcome} onChange=${(e) => setOutcome(e.target.value)}>
        ${m.outcomes.map((o) => html`<option key=${o.outcome} value=${o.outcome}>${o.outcome} · ${pct(o.price)}</option>`)}
      </select>
      ${side === 'buy' && html`<div class="seg" role="group" aria-label="Amount in">
        <button type="button" aria-pressed=${by === 'shares'} onClick=${() => setBy('shares')}>Shares</button>
        <button type="button" aria-pressed=${by === 'spend'} onClick=${() => setBy('spend')}>Budget</button>
      </div>`}
      <label for="t-amount">${by === 'spend' && side === 'buy' ? 'Budget (fee included)' : 'Shares'}</label>
      <input id="t-amount" inputmode="decimal" autocomplete="off" value=${amount} onInput=${(e) => setAmount(e.target.value)} />
      <label for="t-tolerance">Slippage tolerance</label>
      <select id="t-tolerance" value=${tolerance} onChange=${(e) => setTolerance(e.target.value)}>
        ${TOLERANCES.map(([v, l]) => html`<option key=${v} value=${v}>${l}</option>`)}
      </select>
      ${quote && html`<dl class="quote" data-testid="quote" aria-live="polite">
        <dt>Shares</dt><dd>${shares(quote.shares)}</dd>
        <dt>Amount</dt><dd>${coins(quote.amount)}</dd>
        <dt>Fee</dt><dd>${coins(quote.fee)}</dd>
        <dt>Total</dt><dd data-testid="quote-total">${coins(quote.total)}</dd>
        <dt>Average price</dt><dd>${price(quote.avg_price)}</dd>
        <dt>Price after</dt><dd>${pct(quote.price_after)}</dd>
        <dt>${side === 'buy' ? 'Pays at most' : 'Receives at least'}</dt>
        <dd data-testid="guard">${coins(side === 'buy' ? quote.max_total : quote.min_total)}</dd>
      </dl>`}
      ${quoteError && html`<p class="note" data-testid="quote-error">${quoteError}</p>`}
      ${position && html`<p class="note">You hold ${shares(position.shares)} ${outcome}.</p>`}
      ${me
        ? html`<button type="submit" class=${`primary ${side}`} disabled=${busy || !quote || !open}>
            ${side === 'buy' ? 'Buy' : 'Sell'} ${outcome}</button>`
        : html`<p><a href="#/login">Log in</a> or <a href="#/signup">sign up</a> to trade.</p>`}
      ${error && html`<p class="error" role="alert" data-testid="trade-error">${error}</p>`}
      ${result && html`<p class="ok" role="status" data-testid="receipt">${
        `${result.side === 'buy' ? 'Bought' : 'Sold'} ${shares(result.shares)} ${result.outcome} for ${coins(result.total)} `
        + `(average ${price(result.avg_price)}); balance ${coins(result.balance)}.`}</p>`}
    </form>
  </section>`;
}
