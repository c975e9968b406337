// The leaderboard (api.leaderboard) and the calibration chart (api.calibration): resolved
// markets' closing prices against what happened, the platform's proof that its prices forecast.
import * as api from '../api.js';
import { coins, pct } from '../format.js';
import { useLoad } from '../hooks.js';
import { html } from '../html.js';

function Calibration({ c }) {
  const size = 240;
  const pad = 28;
  const span = size - 2 * pad;
  const x = (p) => pad + p * span;
  const y = (p) => size - pad - p * span;
  return html`<figure class="calibration">
    <svg viewBox=${`0 0 ${size} ${size}`} width=${size} height=${size} role="img"
         aria-label="Observed frequency against mean closing price, per price decile">
      <rect x=${pad} y=${pad} width=${span} height=${span} class="frame" />
      <line x1=${x(0)} y1=${y(0)} x2=${x(1)} y2=${y(1)} class="diagonal" />
      ${c.buckets.map((b) => html`<circle key=${b.bucket} cx=${x(b.mean_price)} cy=${y(b.observed)}
        r=${Math.min(10, 3 + Math.sqrt(b.forecasts))} class="dot"><title>${b.bucket}: ${b.forecasts} forecasts, mean price ${b.mean_price}, observed ${b.observed}</title></circle>`)}
      <text x=${size / 2} y=${size - 6} text-anchor="middle">closing price</text>
      <text x="10" y=${size / 2} text-anchor="middle" transform=${`rotate(-90 10 ${size / 2})`}>observed</text>
    </svg>
    <figcaption>${c.markets ? html`Brier score <strong data-testid="brier">${c.brier}</strong> over ${c.markets} resolved markets (0 is perfect; always saying 50 % scores 0.25).` : 'No market has resolved yet.'}</figcaption>
  </figure>`;
}

export function LeaderboardView() {
  const [rows, error] = useLoad(() => api.read('leaderboard', { max_rows: 25 }), []);
  const [cal] = useLoad(() => api.read('calibration'), []);
  return html`<section>
    <h1>Leaderboard</h1>
    ${error && html`<p class="error">${api.explain(error)}</p>`}
    ${rows && html`<div class="table-wrap"><table data-testid="leaderboard">
      <caption>${rows.length ? `Ranked at ${new Date(rows[0].as_of).toLocaleTimeString()}, every minute` : 'Ranked every minute: nobody yet'}</caption>
      <thead><tr><th scope="col">Rank</th><th scope="col">Trader</th><th scope="col">Net worth</th><th scope="col">Profit</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.username}><td>${r.rank}</td><th scope="row">${r.username}</th>
        <td>${coins(r.net_worth)}</td><td class=${r.profit < 0 ? 'down' : 'up'}>${coins(r.profit)}</td></tr>`)}</tbody></table></div>`}
    <h2>Calibration</h2>
    <p>Resolved markets' closing prices against what happened: a price of ${pct(0.7)} should come true seven times in ten.</p>
    ${cal && html`<${Calibration} c=${cal} />`}
    ${cal && cal.buckets.length > 0 && html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Price</th><th scope="col">Forecasts</th><th scope="col">Mean price</th><th scope="col">Observed</th></tr></thead>
      <tbody>${cal.buckets.map((b) => html`<tr key=${b.bucket}><td>${b.bucket}</td><td>${b.forecasts}</td><td>${b.mean_price}</td><td>${b.observed}</td></tr>`)}</tbody></table></div>`}
  </section>`;
}
