// The app's shell: the header (navigation, the stream's state, who is signed in), the router
// (#/, #/market/<code>, #/portfolio, #/leaderboard, #/login, #/signup) and the one stream.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import * as api from './api.js';
import { coins } from './format.js';
import { html } from './html.js';
import * as store from './store.js';
import { refreshMe, setMe, useMe } from './session.js';
import { connect } from './stream.js';
import { AuthView } from './views/auth.js';
import { LeaderboardView } from './views/leaderboard.js';
import { MarketView } from './views/market.js';
import { MarketsView } from './views/markets.js';
import { PortfolioView } from './views/portfolio.js';

function route() {
  const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').map(decodeURIComponent);
  return { page: parts[0] || 'markets', arg: parts[1] };
}

function StreamBadge({ status }) {
  const text = { live: 'Live', reconnecting: 'Reconnecting…', connecting: 'Connecting…' }[status];
  return html`<span class=${`badge stream-${status}`} role="status" aria-live="polite" data-stream=${status}>${text}</span>`;
}

function Header({ status, page }) {
  const me = useMe();
  const link = (href, name, label) => html`<a href=${href} aria-current=${page === name ? 'page' : undefined}>${label}</a>`;
  async function signOut() {
    await api.logout().catch(() => {});
    setMe(null);
    location.hash = '#/';
  }
  return html`<header class="top">
    <a class="brand" href="#/">BetJee</a>
    <nav aria-label="Main">
      ${link('#/', 'markets', 'Markets')}
      ${link('#/portfolio', 'portfolio', 'Portfolio')}
      ${link('#/leaderboard', 'leaderboard', 'Leaderboard')}
    </nav>
    <${StreamBadge} status=${status} />
    <div class="who">
      ${me
        ? html`<span class="user" data-testid="username">${me.username}</span>
               <span class="balance" data-testid="balance" title="Available balance">${coins(me.balance)}</span>
               <button type="button" class="link" onClick=${signOut}>Log out</button>`
        : html`<a href="#/login">Log in</a> <a class="button" href="#/signup">Sign up</a>`}
    </div>
  </header>`;
}

// Every market, a page at a time: api.list_markets in the order markets were created, each page
// after the last code of the one before, until a page comes back short. A page the server
// could not answer (no answer, or a 5xx) is asked again.
const PAGE = 500;
async function loadMarkets() {
  let after = null;
  for (;;) {
    let page;
    try {
      page = await api.read('list_markets', { max_rows: PAGE, after });
    } catch (e) {
      if (e.status && e.status < 500) return;
      await new Promise((resolve) => setTimeout(resolve, 2000));
      continue;
    }
    store.putMarkets(page);
    if (page.length < PAGE) return;
    after = page[page.length - 1].code;
  }
}

function App() {
  const [where, setWhere] = useState(route());
  const [status, setStatus] = useState('connecting');
  useEffect(() => {
    const onHash = () => { setWhere(route()); window.scrollTo(0, 0); };
    window.addEventListener('hashchange', onHash);
    refreshMe();
    // the markets are read once the stream is open (then again if it must start afresh)
    const close = connect({ onBatch: store.batch, onStatus: setStatus, onFresh: loadMarkets });
    return () => { window.removeEventListener('hashchange', onHash); close(); };
  }, []);
  // after a drop, what the stream missed is sent on reconnecting; the account is read again
  useEffect(() => { if (status === 'live') refreshMe(); }, [status]);

  let view;
  switch (where.page) {
    case 'market': view = html`<${MarketView} code=${where.arg} key=${where.arg} />`; break;
    case 'portfolio': view = html`<${PortfolioView} />`; break;
    case 'leaderboard': view = html`<${LeaderboardView} />`; break;
    case 'login': view = html`<${AuthView} mode="login" />`; break;
    case 'signup': view = html`<${AuthView} mode="signup" />`; break;
    default: view = html`<${MarketsView} />`;
  }
  return html`<${Header} status=${status} page=${where.page} />
    ${status === 'reconnecting' && html`<div class="banner" role="alert">The live connection dropped: reconnecting… Prices on screen may be out of date.</div>`}
    <main id="main">${view}</main>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
