import { useEffect, useRef, useState } from 'preact/hooks';
import * as store from './store.js';

// the market as the store has it, re-rendering only when this market changes
export function useMarket(code) {
  const [m, setM] = useState(() => store.market(code));
  useEffect(() => {
    setM(store.market(code));
    return store.onMarket(code, setM);
  }, [code]);
  return m;
}

// run f (debounced by ms) whenever a batch touches this market
export function useOnChange(code, f, ms = 500) {
  const ref = useRef(f);
  ref.current = f;
  useEffect(() => {
    let timer = null;
    const off = store.onChanges((codes) => {
      if (code !== '*' && !codes.has(code)) return;
      clearTimeout(timer);
      timer = setTimeout(() => ref.current(), ms);
    });
    return () => { off(); clearTimeout(timer); };
  }, [code, ms]);
}

// the answer of an async loader, reloaded on demand: [value, error, reload]
export function useLoad(loader, deps) {
  const [state, setState] = useState({ value: undefined, error: null });
  const seq = useRef(0);
  const reload = () => {
    const n = ++seq.current;
    loader().then(
      (value) => n === seq.current && setState({ value, error: null }),
      (error) => n === seq.current && setState((s) => ({ value: s.value, error })),
    );
  };
  useEffect(reload, deps);
  return [state.value, state.error, reload];
}
