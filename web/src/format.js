// Display only: how the API's numbers are written on screen. Nothing here computes a price,
// an amount or a balance; a price is shown as the probability it is.

const coinsFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 });
const sharesFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 6 });
const pctFmt = new Intl.NumberFormat('en-US', { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });

export const coins = (x) => (x === null || x === undefined ? '—' : coinsFmt.format(x));
export const shares = (x) => (x === null || x === undefined ? '—' : sharesFmt.format(x));
export const pct = (p) => (p === null || p === undefined ? '—' : pctFmt.format(p));
// a change of price in percentage points: +2.5 pts
export function change(d) {
  if (d === null || d === undefined) return '—';
  const sign = d > 0 ? '+' : d < 0 ? '−' : '';
  return `${sign}${Math.abs(d * 100).toFixed(1)} pts`;
}
export const price = (p) => (p === null || p === undefined ? '—' : String(p));
export const when = (t) => (t ? new Date(t).toLocaleString() : '—');
export const time = (t) => (t ? new Date(t).toLocaleTimeString() : '—');
