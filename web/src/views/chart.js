// Candles of one outcome's price (api.price_history) with volume bars, in a chosen bucket;
// drawn by TradingView's lightweight-charts, read again when the market changes.
import { CandlestickSeries, ColorType, createChart, HistogramSeries } from 'lightweight-charts';
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api.js';
import { useOnChange } from '../hooks.js';
import { html } from '../html.js';

const BUCKETS = [['1 minute', '1 m', 60], ['5 minutes', '5 m', 300], ['1 hour', '1 h', 3600], ['1 day', '1 d', 86400]];
const CANDLES = 200; // buckets read back from now

const dark = () => window.matchMedia('(prefers-color-scheme: dark)').matches;

export function PriceChart({ code, outcomes }) {
  const box = useRef(null);
  const parts = useRef(null);
  const [bucket, setBucket] = useState('1 hour');
  const [outcome, setOutcome] = useState(outcomes[0]);
  const [count, setCount] = useState(null);

  useEffect(() => {
    const text = dark() ? '#d6d9de' : '#1d2430';
    const grid = dark() ? '#2b313b' : '#eceef2';
    const chart = createChart(box.current, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: 'transparent' }, textColor: text, attributionLogo: false },
      grid: { vertLines: { color: grid }, horzLines: { color: grid } },
      timeScale: { timeVisible: true, secondsVisible: false },
      rightPriceScale: { scaleMargins: { top: 0.1, bottom: 0.25 } },
    });
    const candles = chart.addSeries(CandlestickSeries, { priceFormat: { type: 'price', precision: 3, minMove: 0.001 } });
    const volume = chart.addSeries(HistogramSeries, { priceFormat: { type: 'volume' }, priceScaleId: 'volume', color: '#7d8da6' });
    chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    parts.current = { chart, candles, volume };
    return () => {
      parts.current = null; // a read still on its way finds the chart gone, and draws nothing
      chart.remove();
    };
  }, []);

  function load() {
    const seconds = BUCKETS.find((b) => b[0] === bucket)[2];
    const since = new Date(Date.now() - CANDLES * seconds * 1000).toISOString();
    api.read('price_history', { market: code, bucket, since }).then((rows) => {
      if (!parts.current) return;
      const mine = rows.filter((r) => r.outcome === outcome);
      const t = (r) => Math.floor(Date.parse(r.t) / 1000);
      parts.current.candles.setData(mine.map((r) => ({ time: t(r), open: r.open, high: r.high, low: r.low, close: r.close })));
      parts.current.volume.setData(mine.map((r) => ({ time: t(r), value: r.volume })));
      parts.current.chart.timeScale().fitContent();
      setCount(mine.length);
    }, () => {});
  }
  useEffect(load, [code, bucket, outcome]);
  useOnChange(code, load, 1000);

  return html`<section class="card chart-card" aria-labelledby="chart-title">
    <div class="row">
      <h2 id="chart-title">Price</h2>
      <label class="inline">Outcome
        <select value=${outcome} onChange=${(e) => setOutcome(e.target.value)}>
          ${outcomes.map((o) => html`<option key=${o} value=${o}>${o}</option>`)}
        </select></label>
      <div class="filters" role="group" aria-label="Candle width">
        ${BUCKETS.map(([value, label]) => html`<button type="button" key=${value} aria-pressed=${bucket === value}
          onClick=${() => setBucket(value)}>${label}</button>`)}
      </div>
    </div>
    <div class="chart" ref=${box} role="img" aria-label=${`${outcome} price, ${bucket} candles${count !== null ? `: ${count}` : ''}`}></div>
    <p class="note">Charts: <a href="https://www.tradingview.com/lightweight-charts/" rel="noopener">TradingView Lightweight Charts</a></p>
  </section>`;
}
